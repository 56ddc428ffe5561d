"""Shared helpers of the gateway unit tests: request contexts built like the request path builds them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from serving.engine.protocol import GenerateRequest, SamplingOptions
from serving.gateway.hooks import RequestContext
from serving.gateway.metrics import GatewayMetrics

_ids = itertools.count(1)


def make_ctx(
    *,
    headers: dict[str, str] | None = None,
    messages: list[str] | None = None,
    prompt: str | None = None,
    max_tokens: int | None = 16,
    n: int = 1,
    key_id: str | None = None,
    tier: str | None = None,
    body: Any = None,
) -> RequestContext:
    """A RequestContext with an engine request (chat by default)."""
    if prompt is None and messages is None:
        messages = ["hello there"]
    generate = GenerateRequest(
        request_id=f"req-{next(_ids)}",
        sampling=SamplingOptions(max_tokens=max_tokens, n=n),
        prompt=prompt,
        messages=tuple({"role": "user", "content": m} for m in messages) if messages is not None else None,
    )
    return RequestContext(
        request_id="client-chosen-id",  # the client's x-request-id: not unique
        response_id=generate.request_id,
        route="/v1/chat/completions" if messages is not None else "/v1/completions",
        model="fake-model",
        headers=headers or {},
        body=body,
        generate=generate,
        key_id=key_id,
        tier=tier,
    )


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics("fake-model")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx_factory():
    """``make_ctx`` as a fixture."""
    return make_ctx
