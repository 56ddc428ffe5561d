"""The end of a request is recorded whole, even when the request's task is cancelled."""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest

from serving.core.pipeline import end_request
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.observability.backends import PrometheusClientBackend
from serving.observability.metrics import RequestMetrics


class SlowAfter:
    """A policy whose after() awaits (a limiter release over the network, say)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.done = asyncio.Event()

    async def before(self, ctx: RequestContext) -> None:
        return None

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        await self.gate.wait()
        self.done.set()


async def test_a_cancelled_request_still_runs_every_policys_after() -> None:
    metrics = RequestMetrics("m", backend=PrometheusClientBackend(registry=prometheus_client.CollectorRegistry()))
    ctx = RequestContext(request_id="r", response_id="x", route="/v1/chat/completions", model="m", headers={}, body=None)
    policy = SlowAfter()
    task = asyncio.create_task(
        end_request(ctx, metrics.start(ctx.route), RequestResult(started=0.0, prompt_tokens=3, completion_tokens=1), None, [policy])
    )
    await asyncio.sleep(0.01)  # the policy's after() is waiting
    task.cancel()  # the client leaves while the end is being recorded
    with pytest.raises(asyncio.CancelledError):
        await task
    policy.gate.set()
    await asyncio.wait_for(policy.done.wait(), timeout=2)  # the release was not lost
