"""The Redis store against a real redis-server: the in-process store's semantics, atomic and
idempotent; Redis going down makes the gateway fail closed (503)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.unit.apps import build_app, gateway_of
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine
from serving.gateway.auth.keys import hash_key, key_id_of
from serving.gateway.extension import build_limiter
from serving.gateway.limits.buckets import CONCURRENCY, REQUESTS, TOKENS, TOO_LARGE, LimiterCore, Limits
from serving.gateway.limits.policy import RateLimitPolicy
from serving.gateway.limits.redis_store import RedisLimiter
from serving.gateway.limits.store import LimiterUnavailable, LocalLimiter
from serving.config.gateway import LimitsSettings

LEASE = 900.0


@pytest.fixture
async def pair(redis_server, clock):
    """The in-process store and the Redis store on one fake clock, to run the same script on both."""
    redis = RedisLimiter(redis_server.url, prefix=f"t-{uuid.uuid4().hex[:6]}", lease_s=LEASE, clock=clock)
    yield LocalLimiter(lease_s=LEASE, core=LimiterCore(clock=clock)), redis
    await redis.close()


def _same(a, b) -> None:
    assert (a.allowed, a.reason, a.concurrency_limit, a.in_flight) == (b.allowed, b.reason, b.concurrency_limit, b.in_flight)
    assert a.retry_after_s == pytest.approx(b.retry_after_s, abs=1e-6)
    for x, y in ((a.requests, b.requests), (a.tokens, b.tokens)):
        assert (x is None) == (y is None)
        if x is not None:
            assert (x.limit, x.remaining) == (y.limit, y.remaining)
            assert x.reset_s == pytest.approx(y.reset_s, abs=1e-6)


async def test_same_decisions_as_the_in_process_store(pair, clock):
    local, redis = pair
    limits = Limits(rpm=3, tpm=1000, max_concurrent=2)
    script = [
        ("acquire", "r1", 400), ("acquire", "r2", 400), ("acquire", "r3", 100),   # concurrency
        ("release", "r1", 100), ("acquire", "r3", 700),                           # tokens
        ("tick", 6.0), ("acquire", "r4", 1200),                                   # too large
        ("acquire", "r4", 50), ("release", "r2", 900), ("release", "r4", 0),
        ("acquire", "r5", 10),                                                    # requests
        ("tick", 20.0), ("acquire", "r5", 10), ("acquire", "r5", 10),             # idempotent
    ]
    reasons = []
    for step in script:
        if step[0] == "tick":
            clock.advance(step[1])
            continue
        op, rid, amount = step
        if op == "acquire":
            a = await local.acquire("k", limits, amount, request_id=rid)
            b = await redis.acquire("k", limits, amount, request_id=rid)
            _same(a, b)
            assert a.reservation == b.reservation
            reasons.append(a.reason)
        else:
            await local.release("k", rid, amount)
            await redis.release("k", rid, amount)
    assert {CONCURRENCY, TOKENS, TOO_LARGE, REQUESTS} <= set(reasons)
    assert await redis.in_flight("k") == local.core.in_flight("k") == 1


async def test_refund_idempotency_and_late_acquire_after_release(pair):
    local, redis = pair
    limits = Limits(rpm=10, tpm=1000, max_concurrent=1)
    for store in (local, redis):
        first = await store.acquire("k", limits, 300, request_id="a")
        again = await store.acquire("k", limits, 300, request_id="a")
        assert first.allowed and again.allowed and again.tokens.remaining == 700 and again.requests.remaining == 9
        await store.release("k", "a", 0, refund_request=True)  # refused for overload: all given back
        await store.release("k", "late", 0, refund_request=True)  # a timed-out caller's release comes first
        late = await store.acquire("k", limits, 300, request_id="late")
        assert not late.allowed and late.reservation is None
        fresh = await store.acquire("k", limits, 300, request_id="b")
        assert fresh.requests.remaining == 9 and fresh.tokens.remaining == 700 and fresh.in_flight == 1


async def test_keys_expire_when_idle(redis_server):
    import redis.asyncio as aioredis

    store = RedisLimiter(redis_server.url, prefix="ttl", lease_s=30.0)
    await store.acquire("k", Limits(rpm=60, max_concurrent=1), 0, request_id="x")
    client = aioredis.from_url(redis_server.url)
    try:
        keys = await client.keys("ttl:*")
        assert keys
        for key in keys:
            ttl_ms = await client.pttl(key)
            assert 0 < ttl_ms <= 122_000  # gone once idle and full again (no sweep needed)
    finally:
        await client.aclose()
        await store.close()


async def test_unreachable_redis_is_unavailable_within_the_timeout(redis_server):
    store = RedisLimiter(redis_server.url, prefix="down", timeout_s=0.5)
    assert (await store.acquire("k", Limits(rpm=5), 1, request_id="up")).allowed
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable) as info:
        await store.acquire("k", Limits(rpm=5), 1, request_id="down")
    assert time.monotonic() - started < 2.0
    assert "127.0.0.1" not in str(info.value)  # the URL (maybe with a password) is never in messages
    with pytest.raises(LimiterUnavailable):
        await store.release("k", "up", 1)
    await store.close()


def test_settings_choose_the_redis_store(redis_server):
    limiter = build_limiter(LimitsSettings(store="redis", redis_url=redis_server.url, store_timeout_s=0.25))
    assert isinstance(limiter, RedisLimiter) and limiter.name == "redis" and limiter.timeout_s == 0.25


KEY = "sk-limited-0123456789"


async def test_redis_down_mid_test_fails_closed_with_503(tmp_path, redis_server):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys: [{{key: {KEY}, tier: free}}]")
    settings = load_settings({"gateway": {
        "auth": {"enabled": True, "keys_file": str(keys)},
        "limits": {"tiers": {"default": {}, "free": {"rpm": 100, "tpm": 10_000}},
                   "store": "redis", "redis_url": redis_server.url, "store_timeout_s": 0.5},
    }})
    engine = FakeEngine()
    app = build_app(settings, engine)
    built = gateway_of(app)
    policy = next(p for p in built.policies if isinstance(p, RateLimitPolicy))
    assert isinstance(policy.limiter, RedisLimiter)
    request = {
        "url": "/v1/chat/completions",
        "headers": {"authorization": f"Bearer {KEY}"},
        "json": {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        ok = await c.post(**request)
        assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining-requests"] == "99"
        assert await policy.limiter.in_flight(key_id_of(hash_key(KEY))) == 0  # settled on Redis
        redis_server.stop()
        down = await c.post(**request)
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    error = down.json()["error"]
    assert error["code"] == "limiter_unavailable" and error["type"] == "server_error"
    assert built.metrics.count("rate_limit", "failed_closed", "store_unavailable") == 1
    assert built.metrics.unavailable[("redis", "acquire", "failed_closed")] == 1
    await policy.limiter.close()
