"""64 concurrent requests of one key never spend more than the key's tpm (in process and on Redis).

The clock is frozen, so nothing refills during a test: every token admitted comes out of
one minute's budget. Reservations are taken whole at admission (prompt estimate + the
output cap), so the budget can be passed by at most one request's estimate error.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from serving.gateway.limits.buckets import LimiterCore, Limits
from serving.gateway.limits.policy import LimitResolver, RateLimitPolicy
from serving.gateway.limits.store import LocalLimiter
from serving.gateway.metrics import GatewayMetrics
from serving.config.gateway import LimitsSettings, TierLimits
from serving.errors import RateLimitError
from serving.core.result import RequestResult

TPM = 2_000
CALLERS = 64
FROZEN = 1000.0


@pytest.fixture(params=["memory", "redis"])
async def limiter(request):
    if request.param == "memory":
        yield LocalLimiter(core=LimiterCore(clock=lambda: FROZEN))
        return
    from serving.gateway.limits.redis_store import RedisLimiter

    server = request.getfixturevalue("redis_server")
    store = RedisLimiter(server.url, prefix=f"test-{uuid.uuid4().hex[:6]}", clock=lambda: FROZEN, timeout_s=5.0)
    yield store
    await store.close()


async def test_64_concurrent_acquires_reserve_at_most_the_budget(limiter):
    limits = Limits(tpm=TPM)
    sizes = [random.Random(i).randint(50, 300) for i in range(CALLERS)]
    decisions = await asyncio.gather(
        *(limiter.acquire("one-key", limits, size, request_id=f"r{i}") for i, size in enumerate(sizes))
    )
    admitted = [size for size, d in zip(sizes, decisions) if d.allowed]
    assert admitted, "some requests must fit"
    assert sum(admitted) <= TPM  # reservations are atomic: never over, not even by one request
    assert len({d.reservation for d in decisions if d.allowed}) == len(admitted)
    # What is left cannot take the smallest refused request.
    refused = [size for size, d in zip(sizes, decisions) if not d.allowed]
    assert all(TPM - sum(admitted) < size for size in refused)


async def test_64_concurrent_requests_through_the_policy_stay_within_tpm(limiter, ctx_factory):
    """Whole requests: reserve, run a while, settle with real usage; refunds are reused at once."""
    settings = LimitsSettings(tiers={"default": TierLimits(), "free": TierLimits(tpm=TPM)})
    policy = RateLimitPolicy(
        limiter, LimitResolver(settings), default_output_tokens=100, fail_open=False, metrics=GatewayMetrics("m")
    )
    rng = random.Random(7)
    charged: list[int] = []
    largest = 0

    async def one(i: int) -> None:
        nonlocal largest
        max_tokens = rng.randint(20, 200)
        ctx = ctx_factory(key_id="one-key", tier="free", prompt="x" * rng.randint(0, 400), max_tokens=max_tokens)
        prompt = -(-len(ctx.generate.prompt) // 4)  # the estimate the policy reserves
        largest = max(largest, prompt + max_tokens)
        try:
            await policy.before(ctx)
        except RateLimitError:
            return
        await asyncio.sleep(rng.random() / 50)
        used = prompt + rng.randint(0, max_tokens)  # a request never generates past its cap
        charged.append(used)
        await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=prompt, completion_tokens=used - prompt))

    await asyncio.gather(*(one(i) for i in range(CALLERS)))
    assert charged, "some requests must be admitted"
    assert sum(charged) <= TPM + largest  # the budget is never passed by more than one request
    assert sum(charged) <= TPM  # (and with usage within the reservation, not at all)
