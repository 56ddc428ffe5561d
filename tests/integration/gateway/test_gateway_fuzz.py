"""A short schemathesis run against the real stack (Ray Serve + vLLM): no input may cause a 5xx.

Breadth is covered in process (tests/unit/serving/gateway/test_fuzz.py); this run
proves the same on the real engine, with a bounded number of cases per operation.
"""

from __future__ import annotations

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Stack

EXAMPLES_PER_OPERATION = 8


@pytest.mark.timeout(600)
def test_real_stack_answers_fuzzed_requests_without_5xx(stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    seen: collections.Counter = collections.Counter()
    failures: list[tuple] = []

    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = stack.model  # reach the engine, not the 404
            response = case.call(base_url=stack.base_url, timeout=120)
            seen[response.status_code] += 1
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:300]))

        check()

    assert not failures, failures
    assert seen[200] > 0 and sum(seen.values()) >= EXAMPLES_PER_OPERATION
