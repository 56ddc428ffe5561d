"""The gateway mounted in the real app factory (in process, fake engine at the engine seam).

Proves the wiring the lead's request path relies on: policy order, headers on every
response (errors included), the 413 middleware, in-flight counting, and that an
overload burst yields only 200s and 429s.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.unit.apps import build_app, gateway_of
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.gateway.admission.policy import AdmissionPolicy
from serving.gateway.auth.keys import hash_key, key_id_of
from serving.gateway.auth.middleware import APIKeyMiddleware
from serving.gateway.auth.policy import IdentityPolicy
from serving.gateway.hygiene.body_limit import BodySizeLimitMiddleware
from serving.gateway.hygiene.policy import HygienePolicy
from serving.gateway.limits.policy import RateLimitPolicy
from serving.gateway.limits.buckets import LimiterCore
from serving.gateway.limits.store import LocalLimiter

GOOD = "sk-good-0123456789"
LIMITED = "sk-limited-0123456789"


def app_for(tmp_path, gateway: dict, engine: FakeEngine | None = None, limiter=None):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys: [{{key: {GOOD}, tier: pro}}, {{key: {LIMITED}, tier: free}}]")
    gateway = {"auth": {"enabled": True, "keys_file": str(keys)}, **gateway}
    settings = load_settings({"gateway": gateway})
    engine = engine or FakeEngine()
    app = build_app(settings, engine, overrides={"limiter": limiter or LocalLimiter()})
    built = gateway_of(app)
    return app, built


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def chat(key: str | None = None, **body) -> dict:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    payload = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **body}
    return {"url": "/v1/chat/completions", "json": payload, "headers": headers}


LIMITS = {"limits": {"tiers": {"default": {}, "pro": {}, "free": {"rpm": 3, "tpm": 1000}}}}


def test_policy_order(tmp_path):
    _, built = app_for(tmp_path, LIMITS)
    kinds = [type(p) for p in built.policies]
    assert kinds == [IdentityPolicy, HygienePolicy, RateLimitPolicy, AdmissionPolicy]
    assert [cls for cls, _ in built.middlewares] == [APIKeyMiddleware, BodySizeLimitMiddleware]


async def test_401_then_200(tmp_path):
    app, built = app_for(tmp_path, LIMITS)
    async with client(app) as c:
        missing = await c.post(**chat())
        wrong = await c.post(**chat("sk-wrong-000000000"))
        ok = await c.post(**chat(GOOD))
    for r in (missing, wrong):
        assert r.status_code == 401
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "authentication_error"
        assert "sk-wrong" not in r.text
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
    assert built.metrics.count("auth", "denied") == 2


async def test_every_v1_route_needs_a_key_probes_do_not(tmp_path):
    app, built = app_for(tmp_path, {})
    async with client(app) as c:
        models_without = await c.get("/v1/models")
        models_with = await c.get("/v1/models", headers={"authorization": f"Bearer {GOOD}"})
        health = await c.get("/health")
        schema = await c.get("/openapi.json")
    assert models_without.status_code == 401 and models_without.json()["error"]["code"] == "missing_api_key"
    assert models_without.headers["www-authenticate"] == "Bearer"
    assert models_with.status_code == 200
    assert health.status_code == 200 and schema.status_code == 200


async def test_rpm_exactly_n_then_429_with_headers_on_every_response(tmp_path):
    app, _ = app_for(tmp_path, LIMITS)
    async with client(app) as c:
        # max_tokens above the reply's 6 tokens: the reservation is larger than the usage.
        responses = [await c.post(**chat(LIMITED, max_tokens=16)) for _ in range(5)]
        unlimited = await c.post(**chat(GOOD))
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    for r in responses:
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-limit-tokens"] == "1000"
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == ["2", "1", "0", "0", "0"]
    limited = responses[3]
    assert int(limited.headers["retry-after"]) == 20
    assert limited.json()["error"]["type"] == "rate_limit_error"
    # The 200s were charged real usage, not the reservation: remaining tokens rise back.
    used = responses[0].json()["usage"]["total_tokens"]
    reserved_then = 1000 - int(responses[0].headers["x-ratelimit-remaining-tokens"])
    assert used < reserved_then
    expected = 1000 - used - reserved_then  # (a refill of < 1 token may show)
    assert expected <= int(responses[1].headers["x-ratelimit-remaining-tokens"]) <= expected + 1
    assert "x-ratelimit-limit-requests" not in unlimited.headers


async def test_body_too_large_is_413_in_openai_format(tmp_path):
    app, built = app_for(tmp_path, {"hygiene": {"max_body_bytes": 300}})
    async with client(app) as c:
        big = await c.post(**chat(GOOD, messages=[{"role": "user", "content": "x" * 400}]))

        async def chunks():
            for _ in range(4):
                yield b"x" * 100

        chunked = await c.post(
            "/v1/chat/completions", content=chunks(), headers={"authorization": f"Bearer {GOOD}"}
        )
        small = await c.post(**chat(GOOD))
    assert big.status_code == 413 and chunked.status_code == 413
    assert big.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200
    assert built.metrics.count("hygiene", "denied", "body_size") == 2


async def test_hygiene_400s(tmp_path):
    app, _ = app_for(tmp_path, {"hygiene": {"max_messages": 2, "max_chars": 50}})
    async with client(app) as c:
        many = await c.post(**chat(GOOD, messages=[{"role": "user", "content": "a"}] * 3))
        long = await c.post(**chat(GOOD, messages=[{"role": "user", "content": "a" * 51}]))
        huge_max = await c.post(**chat(GOOD, max_tokens=10_000))
    assert [r.status_code for r in (many, long, huge_max)] == [400, 400, 400]
    assert many.json()["error"]["param"] == "messages"
    assert huge_max.json()["error"]["code"] == "context_length_exceeded"


async def test_overload_burst_only_200_and_429_then_serves(tmp_path):
    engine = FakeEngine(FakeEngineConfig(token_delay_s=0.01))
    gateway = {
        "admission": {"max_in_flight": 4, "retry_after_s": 2},
        "limits": {"tiers": {"default": {}, "pro": {"rpm": 1000}}},
    }
    frozen = LocalLimiter(core=LimiterCore(clock=lambda: 1000.0))  # no refill during the test
    app, built = app_for(tmp_path, gateway, engine, frozen)
    async with client(app) as c:
        burst = await asyncio.gather(*(c.post(**chat(GOOD)) for _ in range(40)))
        after = await c.post(**chat(GOOD))
    codes = [r.status_code for r in burst]
    assert set(codes) == {200, 429}
    assert codes.count(200) >= 4
    for r in burst:
        assert "x-ratelimit-remaining-requests" in r.headers  # on every response
        if r.status_code == 429:
            assert r.headers["retry-after"] == "2" and r.json()["error"]["code"] == "overloaded"
    assert after.status_code == 200
    # Overload refusals were given back to the key's quota: only the 200s count.
    used = 1000 - int(after.headers["x-ratelimit-remaining-requests"])
    assert used == codes.count(200) + 1
    admission = next(p for p in built.policies if isinstance(p, AdmissionPolicy))
    assert admission.controller.in_flight == 0


async def test_stream_failing_midway_ends_with_error_event_then_done(tmp_path):
    engine = FakeEngine(FakeEngineConfig(fail_after_tokens=2))
    app, built = app_for(tmp_path, LIMITS, engine)
    async with client(app) as c:
        r = await c.post(**chat(LIMITED, stream=True))
    events = [line[len("data: "):] for line in r.text.splitlines() if line.startswith("data: ")]
    assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "3"
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "server_error"
    assert any("choices" in json.loads(e) for e in events[:-2])
    # The failed stream released its reservation.
    limiter = next(p for p in built.policies if isinstance(p, RateLimitPolicy)).limiter
    assert limiter.core.in_flight(key_id_of(hash_key(LIMITED))) == 0
    assert len(limiter.core) == 1
