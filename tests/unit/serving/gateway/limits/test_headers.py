"""OpenAI's x-ratelimit headers and Retry-After."""

from __future__ import annotations

import pytest

from serving.gateway.limits.buckets import Decision, Status
from serving.gateway.limits.headers import duration, rate_limit_headers, retry_after


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0ms"), (0.0201, "21ms"), (1.0, "1s"), (1.5, "1.5s"), (360.0, "6m0s"), (3600.0, "1h0m0s"), (61.25, "1m1.25s")],
)
def test_duration_matches_openai_style(seconds, text):
    assert duration(seconds) == text


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0.0) == "1"
    assert retry_after(1.01) == "2"
    assert retry_after(20.0) == "20"


def test_headers_for_each_limited_dimension():
    decision = Decision(
        allowed=True,
        requests=Status(limit=60, remaining=59, reset_s=1.0),
        tokens=Status(limit=1000, remaining=900, reset_s=6.0),
    )
    assert rate_limit_headers(decision) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "6s",
    }
    assert rate_limit_headers(Decision(allowed=True)) == {}
