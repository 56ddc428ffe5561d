"""The request context the HTTP layer builds: what policies see of a request (never the key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import httpx
import pytest
from pydantic import BaseModel

from serving.core.extension import Extension, Feature
from serving.extensions import FEATURES
from tests.unit.apps import CapturePolicy, build_app
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine
from serving.gateway.auth.keys import hash_key
from serving.gateway.limits.store import LocalLimiter

SECRET = "sk-secret-0123456789abcdef"


def _texts(value, depth=0):
    """Every string reachable from ``value`` (fields, mappings, sequences, models, objects)."""
    if depth > 8 or value is None:
        return
    if isinstance(value, (str, bytes)):
        yield value.decode("latin-1") if isinstance(value, bytes) else value
        return
    if isinstance(value, BaseModel):
        yield from _texts(value.model_dump(), depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _texts(getattr(value, f.name), depth + 1)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _texts(k, depth + 1)
            yield from _texts(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _texts(item, depth + 1)
    elif hasattr(value, "__dict__"):
        yield from _texts(vars(value), depth + 1)
    if hasattr(value, "raw"):  # starlette Headers keep their raw list too
        yield from _texts(getattr(value, "raw"), depth + 1)
    yield repr(value)


@pytest.mark.parametrize("auth", [True, False])
@pytest.mark.parametrize("header", ["authorization", "api-key", "x-api-key"])
async def test_context_keeps_no_api_key(tmp_path, auth, header):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys: [{{key: {SECRET}, tier: pro}}]")
    settings = load_settings({"gateway": {"auth": {"enabled": auth, "keys_file": str(keys)}}})
    engine = FakeEngine()
    capture = CapturePolicy()
    features = (*FEATURES, Feature("capture", lambda _: Extension(policies=[capture])))
    app = build_app(settings, engine, features=features, overrides={"limiter": LocalLimiter()})
    value = f"Bearer {SECRET}" if header == "authorization" else SECRET
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/v1/chat/completions", json=body, headers={header: value})
    assert response.status_code == 200
    (ctx,) = capture.seen
    leaked = [f for f in dataclasses.fields(ctx) if any(SECRET in t for t in _texts(getattr(ctx, f.name)))]
    assert leaked == []
    if auth:  # who is calling survives as the short id and tier only
        assert ctx.key_id == hash_key(SECRET)[:8] and ctx.tier == "pro"
    else:
        assert ctx.key_id == "anonymous"
    assert ctx.headers.get("content-type") == "application/json"  # other headers stay
