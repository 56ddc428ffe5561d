"""The shared limiter on real Ray: two callers in separate processes share one named actor;
a timed-out acquire leaves nothing reserved; a restarted actor answers and the policy copes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from serving.engine.protocol import GenerateRequest, ModelInfo, SamplingOptions
from serving.core.context import RequestContext
from serving.gateway.limits.buckets import Limits
from serving.gateway.limits.policy import LimiterUnavailableError, LimitResolver, RateLimitPolicy
from serving.gateway.limits.ray_store import RayLimiter
from serving.gateway.limits.store import LimiterUnavailable
from serving.gateway.metrics import GatewayMetrics
from serving.config.gateway import LimitsSettings, TierLimits
from serving.core.result import RequestResult

NAMESPACE = "gateway-tests"


@pytest.fixture
def actor_name(ray_serve_instance) -> str:
    import ray

    name = f"limiter-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    except ValueError:
        pass


def _caller_class():
    import ray

    @ray.remote(num_cpus=0)
    class Caller:
        """Stands in for one ingress replica: its own process, its own RayLimiter."""

        def __init__(self, name: str, namespace: str) -> None:
            self.limiter = RayLimiter(name, namespace=namespace, timeout_s=10)

        async def acquire_many(self, key: str, limits: Limits, count: int) -> list[bool]:
            return [(await self.limiter.acquire(key, limits, 1)).allowed for _ in range(count)]

    return Caller


def test_limit_is_shared_by_callers_in_other_processes(actor_name):
    import ray

    Caller = _caller_class()
    callers = [Caller.remote(actor_name, NAMESPACE) for _ in range(2)]
    limits = Limits(rpm=7)
    results = ray.get([c.acquire_many.remote("key-a", limits, 6) for c in callers], timeout=60)
    allowed = [ok for r in results for ok in r]
    # 12 attempts from two processes at once: exactly the 7 the minute allows.
    assert allowed.count(True) == 7
    # Another key is unaffected.
    assert ray.get(callers[0].acquire_many.remote("key-b", limits, 1), timeout=30) == [True]


async def test_release_with_real_usage_and_concurrency(actor_name):
    limiter = RayLimiter(actor_name, namespace=NAMESPACE, timeout_s=10)
    limits = Limits(tpm=1000, max_concurrent=1)
    first = await limiter.acquire("k", limits, 600)
    assert first.allowed and first.tokens.remaining == 400
    second = await limiter.acquire("k", limits, 10)
    assert not second.allowed and second.reason == "concurrency"
    await limiter.release("k", first.reservation, 50)
    assert await limiter.in_flight("k") == 0
    third = await limiter.acquire("k", limits, 10)
    assert third.allowed and 940 <= third.tokens.remaining <= 941


async def test_killed_actor_is_unavailable_then_recreated(actor_name):
    import ray

    limiter = RayLimiter(actor_name, namespace=NAMESPACE, timeout_s=5)
    assert (await limiter.acquire("k", Limits(rpm=1), 1)).allowed
    ray.kill(limiter.actor(), no_restart=True)
    with pytest.raises(LimiterUnavailable):
        for _ in range(20):  # the kill takes effect asynchronously
            await limiter.acquire("k", Limits(rpm=1), 1)
            await asyncio.sleep(0.1)
    # The next call looks the name up again and gets a fresh actor (counters start afresh).
    assert (await limiter.acquire("k", Limits(rpm=1), 1)).allowed


async def _eventually(check, timeout_s: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_timed_out_acquire_leaves_nothing_reserved(actor_name):
    steady = RayLimiter(actor_name, namespace=NAMESPACE, timeout_s=10)
    limits = Limits(rpm=100, max_concurrent=1)
    assert (await steady.acquire("warm", limits, 0)).allowed  # the actor exists and answers
    # Never waits for the answer: a zero timeout times out unless the answer is already there,
    # and a round trip to another process cannot be (a 0.5 ms timeout was not always enough).
    hasty = RayLimiter(actor_name, namespace=NAMESPACE, timeout_s=0, startup_timeout_s=0)
    with pytest.raises(LimiterUnavailable):
        await hasty.acquire("k", limits, 0, request_id="chatcmpl-timeout")
    # The acquire still reached the actor; the release sent after the timeout took it back.
    assert await _eventually(lambda: _in_flight_is(steady, "k", 0))
    again = await steady.acquire("k", limits, 0, request_id="chatcmpl-next")
    assert again.allowed and again.in_flight == 1  # the concurrency slot was not held for lease_s


async def _in_flight_is(limiter: RayLimiter, key: str, count: int) -> bool:
    try:
        return await limiter.in_flight(key) == count
    except LimiterUnavailable:  # restarting
        return False


def _ctx(i: int) -> RequestContext:
    generate = GenerateRequest(
        request_id=f"chatcmpl-restart-{i}", sampling=SamplingOptions(max_tokens=10), prompt="hello"
    )
    return RequestContext(
        request_id="client", response_id=generate.request_id, route="/v1/completions", model="m",
        headers={}, body=None, generate=generate, key_id="k", tier="free",
    )


async def test_restarted_actor_answers_and_the_policy_does_not_crash(actor_name):
    import ray

    limiter = RayLimiter(actor_name, namespace=NAMESPACE, timeout_s=2)
    settings = LimitsSettings(tiers={"default": TierLimits(), "free": TierLimits(rpm=1000, max_concurrent=50)})
    metrics = GatewayMetrics("m")
    policy = RateLimitPolicy(
        limiter, LimitResolver(settings), default_output_tokens=16, fail_open=settings.fail_open,
        metrics=metrics, model=ModelInfo(id="m", max_model_len=512, created=0),
    )
    held = _ctx(0)
    await policy.before(held)
    assert (await limiter.acquire("marker", Limits(max_concurrent=1), 0, request_id="marker")).allowed
    ray.kill(limiter.actor(), no_restart=False)  # Ray restarts it (max_restarts=-1); counters start afresh

    # Until the restarted actor answers (the marker is gone: a fresh actor), every request
    # gets an answer from the policy: admitted, or a clear 503 — nothing else.
    admitted, refused = [], 0
    for i in range(1, 300):
        ctx = _ctx(i)
        try:
            await policy.before(ctx)
            admitted.append(ctx)
        except LimiterUnavailableError:
            refused += 1
        if await _in_flight_is(limiter, "marker", 0):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the limiter actor did not come back")
    assert ray.get_actor(actor_name, namespace=NAMESPACE) is not None  # the same name, restarted
    # Settling reservations the old actor held (and any admitted meanwhile) does not crash.
    for ctx in (held, *admitted):
        await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=3, completion_tokens=4))
    assert await _eventually(lambda: _in_flight_is(limiter, "k", 0))  # timed-out attempts were released
    fresh = _ctx(1000)
    await policy.before(fresh)
    assert await limiter.in_flight("k") == 1
    await policy.after(fresh, RequestResult(started=0.0, prompt_tokens=3, completion_tokens=4))
    assert await limiter.in_flight("k") == 0
    assert metrics.count("rate_limit", "failed_open") == 0  # fail closed while it restarted
    assert metrics.count("rate_limit", "failed_closed") == refused
