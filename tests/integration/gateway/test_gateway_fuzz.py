"""Schemathesis against the real stack (Ray Serve + vLLM): every route, >= 1,000 cases, no 5xx.

Every operation of the app's own OpenAPI schema is fuzzed — the stack has embeddings on,
so the schema has every route — with a case budget per operation (generation routes
get the most). Most cases are refused at validation; the ones that reach the engine
are kept cheap: output-token counts above ``MAX_TOKENS`` are lowered before the call
(a ``before_call`` step) and a chat request without one stops after the server's
default, set small here. Breadth with the fake engine is covered in process
(tests/unit/serving/gateway/test_fuzz.py).
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Stack

MIN_CASES = 1000
MAX_TOKENS = 4  # output tokens per choice of a fuzzed generation
MAX_N = 2  # choices of a fuzzed generation
# Cases per operation; an operation with few distinct inputs (GET /health) ends early.
EXAMPLES = {
    "POST /v1/chat/completions": 300,
    "POST /v1/completions": 250,
    "POST /v1/embeddings": 175,
    "POST /v1/moderations": 175,
    "POST /v1/feedback": 175,
    "GET /v1/models/{model_id}": 75,
}
DEFAULT_EXAMPLES = 10


@pytest.fixture
def fuzz_stack(deploy_stack: Callable[..., Stack]) -> Stack:
    """The tiny stack with every route on; cheap defaults for the cases that reach a model."""
    return deploy_stack({
        "embeddings": {"enabled": True, "num_cpus": 0.1},
        "feedback": {"lookup_grace_s": 0},  # an unknown response id is answered at once
        "model": {"generation": {"default_max_tokens": MAX_TOKENS}},
    })


def before_call(case: Any, stack: Stack) -> None:
    """Reach the routes' logic (served model names) and keep generations short."""
    body = case.body
    if not isinstance(body, dict):
        return
    path = case.operation.path
    if "model" in body:
        body["model"] = {
            "/v1/embeddings": stack.settings.embeddings.model_id,
            "/v1/moderations": stack.settings.moderation.model_name,
        }.get(path, stack.model)  # reach the policies and the engine, not the 404
    if path in ("/v1/chat/completions", "/v1/completions"):
        for name in ("max_tokens", "max_completion_tokens"):
            if isinstance(body.get(name), int) and body[name] > MAX_TOKENS:
                body[name] = MAX_TOKENS
        if isinstance(body.get("n"), int) and body["n"] > MAX_N:
            body["n"] = MAX_N


@pytest.mark.timeout(900)
def test_real_stack_answers_fuzzed_requests_without_5xx(fuzz_stack: Stack) -> None:
    stack = fuzz_stack
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    seen: collections.Counter = collections.Counter()
    per_operation: collections.Counter = collections.Counter()
    failures: list[tuple] = []
    started = time.monotonic()

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES.get(label, DEFAULT_EXAMPLES),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case) -> None:
            before_call(case, stack)
            response = case.call(base_url=stack.base_url, timeout=120)
            seen[response.status_code] += 1
            per_operation[label] += 1
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:300], repr(case.body)[:500]))

        check()

    elapsed = time.monotonic() - started
    print(f"\n{sum(seen.values())} cases in {elapsed:.0f}s; by operation {dict(per_operation)}; by status {dict(seen)}")
    assert not failures, failures
    assert set(per_operation) >= {*EXAMPLES, "GET /v1/models", "GET /health", "GET /ready"}  # every route
    assert sum(seen.values()) >= MIN_CASES
    assert seen[200] > 0
