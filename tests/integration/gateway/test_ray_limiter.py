"""The shared limiter on real Ray: two callers in separate processes share one named actor."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from serving.gateway.limits.buckets import Limits
from serving.gateway.limits.ray_store import RayLimiter
from serving.gateway.limits.store import LimiterUnavailable

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
