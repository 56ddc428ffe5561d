"""The served default model says what its weights say: greedy answers vs a float32 reference.

The reference is computed here, by transformers in float32 from the same prepared folder
the stack serves. The stack is asked through the whole path (Ray Serve -> our API ->
vLLM) with the shipped quality prompt set. Two criteria, as vLLM's own model tests use:
(a) close: at the first divergence each side's token is in the other's top-5, for every
precision the CPU settings allow (float32, bfloat16; ``auto`` is the folder's bfloat16);
(b) the default precision reproduces the reference exactly on at least 19 of every 20
prompts. The failure message is the quality tool's whole report.
"""

from __future__ import annotations

from typing import Callable

import pytest

from serving.config.settings import EngineSettings
from serving.quality.client import run_prompt_set
from serving.quality.prompts import PromptSet, load_prompt_set
from serving.quality.reference import reference_run
from serving.quality.report import render_text, summarize
from serving.quality.results import QualityRun
from tests.conftest import Stack
from tests.e2e.conftest import DEFAULT_STACK_OVERRIDES

MAX_TOKENS = 24
TOP_K = 5
CPU_PRECISIONS = ("float32", "bfloat16")


@pytest.fixture(scope="module")
def prompt_set() -> PromptSet:
    return load_prompt_set()


@pytest.fixture(scope="module")
def reference(default_model_dir, prompt_set: PromptSet) -> QualityRun:
    """Greedy answers of transformers float32 from the served folder (~20 s on 2 cores)."""
    return reference_run(default_model_dir, prompt_set, model="reference", max_tokens=MAX_TOKENS, top_k=TOP_K)


def _served(stack: Stack, prompt_set: PromptSet) -> QualityRun:
    return run_prompt_set(stack.api_base, prompt_set, model=stack.model, max_tokens=MAX_TOKENS, top_k=TOP_K)


def test_the_prompt_set_is_big_enough_for_the_criteria(prompt_set: PromptSet) -> None:
    assert len(prompt_set.cases) >= 20


def test_default_precision_reproduces_the_reference(
    default_stack: Stack, prompt_set: PromptSet, reference: QualityRun
) -> None:
    assert default_stack.settings.model.engine.dtype is None  # what a user gets: the device default
    assert default_stack.settings.model.engine.resolved_dtype == "float32"
    served = _served(default_stack, prompt_set)
    summary = summarize(served, prompt_set, reference)
    report = render_text(summary, served)
    assert summary.errors == 0, report
    assert summary.close == summary.cases, report  # (a)
    required = summary.cases - summary.cases // 20  # at least 19 of every 20
    assert summary.exact >= required, f"exact {summary.exact}/{summary.cases} < {required}\n{report}"  # (b)


@pytest.mark.parametrize("dtype", [d for d in CPU_PRECISIONS if d != EngineSettings().resolved_dtype])
def test_every_other_cpu_precision_is_close_to_the_reference(
    dtype: str,
    deploy_stack: Callable[..., Stack],
    prompt_set: PromptSet,
    reference: QualityRun,
) -> None:
    overrides = {"model": {**DEFAULT_STACK_OVERRIDES["model"], "engine": {**DEFAULT_STACK_OVERRIDES["model"]["engine"], "dtype": dtype}}}
    stack = deploy_stack(overrides, base="default")
    served = _served(stack, prompt_set)
    summary = summarize(served, prompt_set, reference)
    report = render_text(summary, served)
    assert summary.errors == 0, report
    assert summary.close == summary.cases, report  # (a); exactness is not asked of bf16
