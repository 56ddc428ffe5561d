"""Authentication happens once (``APIKeyMiddleware``); the identity policy only puts who is
calling on the context: 401 in the OpenAI format, the short key id and tier, no key kept."""

from __future__ import annotations

import logging

import httpx
import pytest

from serving.errors import AuthenticationError
from serving.gateway.auth.keys import KeyStore, hash_key
from serving.gateway.auth.policy import IdentityPolicy, presented_key
from serving.engine.fake import FakeEngine
from tests.unit.apps import CapturePolicy, build_app, gateway_of, plus

SECRET = "sk-test-0123456789abcdef"


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer abc"}, "abc"),
        ({"Authorization": "bearer  abc "}, "abc"),
        ({"authorization": "Basic abc"}, None),
        ({"authorization": "Bearer "}, None),
        ({"x-api-key": "abc"}, "abc"),
        ({"api-key": "abc"}, "abc"),
        ({}, None),
    ],
)
def test_presented_key(headers, key):
    assert presented_key(headers) == key


async def test_without_auth_every_request_is_the_anonymous_key(ctx_factory):
    ctx = ctx_factory()
    await IdentityPolicy(default_tier="default", require_key=False).before(ctx)
    assert (ctx.key_id, ctx.tier) == ("anonymous", "default")


async def test_with_auth_a_context_without_an_authenticated_key_is_refused(ctx_factory):
    """Deny by default: a route reached without the middleware's identity opens nothing."""
    with pytest.raises(AuthenticationError) as info:
        await IdentityPolicy(default_tier="free", require_key=True).before(ctx_factory())
    assert info.value.status_code == 401 and info.value.code == "missing_api_key"


class CountingStore(KeyStore):
    lookups = 0

    def lookup(self, key):  # type: ignore[override]
        CountingStore.lookups += 1
        return super().lookup(key)


@pytest.fixture
def app_and_capture(tmp_path, monkeypatch):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: [{{key: {SECRET}, tier: pro}}, {{key: sk-test-notiered-key}}]")
    monkeypatch.setattr("serving.gateway.extension.KeyStore", CountingStore)
    CountingStore.lookups = 0
    capture = CapturePolicy()
    settings = {
        "feedback": {"enabled": False},
        "gateway": {"auth": {"enabled": True, "keys_file": str(path)}, "limits": {"default_tier": "free", "tiers": {"free": {}, "pro": {}}}},
    }
    app = build_app(settings, FakeEngine(), features=plus(policies=[capture]))
    return app, capture


async def call(app, headers):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.post("/v1/chat/completions", json=body, headers=headers)


async def test_a_right_key_is_checked_once_and_sets_id_and_tier(app_and_capture):
    app, capture = app_and_capture
    assert (await call(app, {"authorization": f"Bearer {SECRET}", "x-request-id": "r1"})).status_code == 200
    (ctx,) = capture.seen
    assert (ctx.key_id, ctx.tier) == (hash_key(SECRET)[:8], "pro")
    assert "authorization" not in ctx.headers and ctx.headers["x-request-id"] == "r1"
    assert CountingStore.lookups == 1
    assert gateway_of(app).metrics.count("auth", "allowed") == 1


async def test_a_key_without_tier_gets_the_default(app_and_capture):
    app, capture = app_and_capture
    assert (await call(app, {"x-api-key": "sk-test-notiered-key"})).status_code == 200
    assert capture.seen[0].tier == "free"


@pytest.mark.parametrize(
    ("headers", "reason", "code"),
    [({}, "missing", "missing_api_key"), ({"authorization": "Bearer sk-wrong-key-123"}, "invalid", "invalid_api_key")],
)
async def test_missing_or_wrong_key_is_401(app_and_capture, caplog, headers, reason, code):
    app, capture = app_and_capture
    with caplog.at_level(logging.DEBUG):
        response = await call(app, headers)
    assert response.status_code == 401
    body = response.json()["error"]
    assert body["type"] == "authentication_error" and body["code"] == code
    assert "sk-wrong-key-123" not in response.text and "sk-wrong-key-123" not in caplog.text
    assert capture.seen == []
    assert gateway_of(app).metrics.count("auth", "denied", reason) == 1
