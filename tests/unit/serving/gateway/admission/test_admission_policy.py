"""Admission: 429 + Retry-After when running + waiting reach capacity; in-flight counting."""

from __future__ import annotations

import pytest

from serving.engine.protocol import EngineLoad
from serving.errors import OverloadedError, error_body_for
from serving.gateway.admission.policy import AdmissionController, AdmissionPolicy
from serving.config.gateway import AdmissionSettings
from serving.core.result import RequestResult


class Load:
    def __init__(self, running=0, waiting=0, max_running=4):
        self.value = EngineLoad(running=running, waiting=waiting, max_running=max_running)

    def __call__(self) -> EngineLoad:
        return self.value


def policy(load, metrics, **kw) -> AdmissionPolicy:
    enforce = kw.pop("enforce", True)
    return AdmissionPolicy(AdmissionController(load, AdmissionSettings(**kw), metrics=metrics, enforce=enforce))


async def test_engine_queue_full_is_429_with_retry_after(metrics, ctx_factory):
    load = Load(running=4, waiting=2)
    p = policy(load, metrics, max_waiting=2, retry_after_s=3)
    ctx = ctx_factory()
    with pytest.raises(OverloadedError) as info:
        await p.before(ctx)
    exc = info.value
    assert exc.status_code == 429 and exc.headers == {"retry-after": "3"}
    assert ctx.response_headers["retry-after"] == "3"
    assert error_body_for(exc)["error"]["code"] == "overloaded"
    assert metrics.count("admission", "denied", "queue_full") == 1
    load.value = EngineLoad(running=4, waiting=1, max_running=4)
    await p.before(ctx_factory())


async def test_burst_faster_than_engine_is_counted_locally(metrics, ctx_factory):
    p = policy(Load(), metrics, max_waiting=1)  # capacity 4 + 1, engine still reports 0
    admitted = [ctx_factory() for _ in range(5)]
    for ctx in admitted:
        await p.before(ctx)
    with pytest.raises(OverloadedError):
        await p.before(ctx_factory())
    await p.after(admitted[0], RequestResult(started=0.0, prompt_tokens=1, completion_tokens=1))
    await p.before(ctx_factory())
    assert p.controller.in_flight == 5


async def test_max_in_flight_overrides_engine_capacity(metrics, ctx_factory):
    p = policy(Load(max_running=100), metrics, max_in_flight=1)
    await p.before(ctx_factory())
    with pytest.raises(OverloadedError):
        await p.before(ctx_factory())


async def test_not_enforced_only_counts(metrics, ctx_factory):
    p = policy(Load(running=99, waiting=99), metrics, enforce=False)
    ctx = ctx_factory()
    await p.before(ctx)
    assert p.controller.in_flight == 1
    await p.after(ctx, RequestResult(started=0.0, prompt_tokens=0, completion_tokens=0))
    await p.after(ctx_factory(), RequestResult(started=0.0, prompt_tokens=0, completion_tokens=0))  # never admitted: harmless
    assert p.controller.in_flight == 0


async def test_disabled_setting_never_refuses(metrics, ctx_factory):
    p = policy(Load(running=99, waiting=99), metrics, enabled=False)
    await p.before(ctx_factory())
