"""The operator stack: the tiny-model app with feedback, moderation (rules + classifier),
audit log, context policy and embeddings switched on, on the session's real Ray Serve.

The "unsafe" output is real: a phrase the tiny model generates (greedy) for PROMPT is
read from the default stack and planted as a moderation rule of the operator stack,
which then has to cut its own stream mid-way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Stack

PLANTED_CATEGORY = "test/planted"
PROMPT = [{"role": "user", "content": "Tell me something about the sea."}]
# Values planted in requests; none may appear in any log or the audit log.
PLANTED_PII = {
    "email": "planted.operator@example.org",
    "phone": "+1 415 555 0142",
    "card": "4000 0566 5566 5556",
    "key": "sk-operatorPLANTEDsecret00112233",
}


@dataclass(frozen=True)
class Planted:
    """The greedy output of PROMPT and the phrase of it that the rule blocks."""

    output: str
    phrase: str
    start: int  # where the phrase starts in output


@dataclass(frozen=True)
class OperatorStack:
    """The deployed operator stack and where it keeps its files."""

    stack: Stack
    planted: Planted
    database_url: str
    database_path: Path
    audit_dir: Path


@pytest.fixture(scope="session")
def planted(deploy_stack: Callable[..., Stack]) -> Planted:
    """A phrase from the middle of the tiny model's greedy answer to PROMPT (default stack)."""
    stack = deploy_stack()
    body = {"model": stack.model, "messages": PROMPT, "max_tokens": 48, "temperature": 0}
    output = httpx.post(f"{stack.api_base}/chat/completions", json=body, timeout=60).json()["choices"][0]["message"][
        "content"
    ]
    assert len(output) >= 40, f"the tiny model's answer is too short to plant a phrase in: {output!r}"
    start = len(output) // 3
    phrase = output[start : start + 12]
    return Planted(output=output, phrase=phrase, start=output.find(phrase))


@pytest.fixture(scope="session")
def operator_stack(deploy_stack: Callable[..., Stack], planted: Planted, tmp_path_factory) -> OperatorStack:
    """The stack with every operator feature on (deployed once per session)."""
    root = tmp_path_factory.mktemp("operator")
    db_path = root / "feedback.sqlite3"
    overrides = {
        "feedback": {"database_url": f"sqlite:///{db_path}", "flush_interval_s": 0.1},
        "moderation": {
            "rules": [{"category": PLANTED_CATEGORY, "patterns": [re.escape(planted.phrase)]}],
            "classifier": {"enabled": True, "num_cpus": 0.1},
        },
        "privacy": {"audit": {"enabled": True, "dir": str(root / "audit")}},
        "embeddings": {"enabled": True, "num_cpus": 0.1, "max_batch_size": 16, "batch_wait_timeout_s": 0.05},
        "context": {"policy": "truncate_oldest"},
    }
    stack = deploy_stack(overrides)
    return OperatorStack(stack, planted, f"sqlite:///{db_path}", db_path, root / "audit")


def metric_samples(metrics_url: str, name: str) -> list:
    """Samples of metric family ``name`` (e.g. ray_serving_moderation_blocks) on Ray's metrics port."""
    text = httpx.get(metrics_url, timeout=30).text
    return [s for family in text_string_to_metric_families(text) if family.name == name for s in family.samples]


def wait_for_metric(metrics_url: str, name: str, predicate: Callable[[list], bool], timeout_s: float = 30.0) -> list:
    """Poll Ray's metrics until ``predicate(samples)`` holds (Ray exports every few seconds)."""
    deadline = time.monotonic() + timeout_s
    samples: list = []
    while time.monotonic() < deadline:
        samples = metric_samples(metrics_url, name)
        if predicate(samples):
            return samples
        time.sleep(1.0)
    raise AssertionError(f"{name}: condition not met in {timeout_s}s; last samples: {samples}")
