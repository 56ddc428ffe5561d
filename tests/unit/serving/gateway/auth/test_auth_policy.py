"""The API key policy: 401 in the OpenAI format, the short key id and tier on the context."""

from __future__ import annotations

import logging

import pytest

from serving.errors import AuthenticationError, error_body_for
from serving.gateway.auth.keys import KeyStore, hash_key
from serving.gateway.auth.policy import AnonymousPolicy, AuthPolicy, presented_key

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def policy(tmp_path, metrics):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: [{{key: {SECRET}, tier: pro}}, {{key: sk-test-notiered-key}}]")
    return AuthPolicy(KeyStore(path), default_tier="free", metrics=metrics)


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


async def test_right_key_sets_id_and_tier(policy, ctx_factory, metrics):
    ctx = ctx_factory(headers={"authorization": f"Bearer {SECRET}"})
    assert await policy.before(ctx) is None
    assert ctx.key_id == hash_key(SECRET)[:8]
    assert ctx.tier == "pro"
    assert metrics.count("auth", "allowed") == 1


async def test_key_without_tier_gets_default(policy, ctx_factory):
    ctx = ctx_factory(headers={"authorization": "Bearer sk-test-notiered-key"})
    await policy.before(ctx)
    assert ctx.tier == "free"


@pytest.mark.parametrize(
    ("headers", "reason", "code"),
    [({}, "missing", "missing_api_key"), ({"authorization": "Bearer sk-wrong-key-123"}, "invalid", "invalid_api_key")],
)
async def test_missing_or_wrong_key_is_401(policy, ctx_factory, metrics, caplog, headers, reason, code):
    ctx = ctx_factory(headers=headers)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        await policy.before(ctx)
    exc = info.value
    assert exc.status_code == 401
    body = error_body_for(exc)["error"]
    assert body["type"] == "authentication_error" and body["code"] == code
    assert "sk-wrong-key-123" not in body["message"] and "sk-wrong-key-123" not in caplog.text
    assert ctx.key_id is None
    assert metrics.count("auth", "denied", reason) == 1


async def test_anonymous_policy_uses_default_tier(ctx_factory):
    ctx = ctx_factory()
    await AnonymousPolicy(default_tier="default").before(ctx)
    assert (ctx.key_id, ctx.tier) == ("anonymous", "default")


async def test_key_headers_are_dropped_from_the_context(policy, ctx_factory):
    ctx = ctx_factory(headers={"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET, "x-request-id": "r1"})
    await policy.before(ctx)
    assert ctx.headers == {"x-request-id": "r1"}


async def test_key_accepted_by_the_middleware_is_rechecked_by_id(tmp_path, metrics, ctx_factory):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: [{{key: {SECRET}, id: live, tier: pro}}, {{key: sk-test-revoked-key, id: gone, disabled: true}}]")
    policy = AuthPolicy(KeyStore(path), default_tier="free", metrics=metrics)
    ctx = ctx_factory(key_id="live")  # what the request path builds behind APIKeyMiddleware: no key headers
    await policy.before(ctx)
    assert (ctx.key_id, ctx.tier) == ("live", "pro")
    for stale in ("gone", "never-existed"):
        with pytest.raises(AuthenticationError):
            await policy.before(ctx_factory(key_id=stale))
    assert metrics.count("auth", "denied", "invalid") == 2
