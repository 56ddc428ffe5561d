"""The API key middleware in the real app factory: deny by default, on the route the router sees.

Every request is driven at the ASGI level with a body that never finishes, so a
middleware that waited for the body before deciding would hang (and fail the test).
"""

from __future__ import annotations

import pytest

from tests.unit.apps import build_app
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine
from serving.gateway.limits.store import LocalLimiter

GOOD = "sk-good-0123456789"


@pytest.fixture
def app(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys: [{{key: {GOOD}}}]")
    settings = load_settings({
        "gateway": {"auth": {"enabled": True, "keys_file": str(keys)}, "hygiene": {"body_read_timeout_s": 60}}
    })
    engine = FakeEngine()
    app = build_app(settings, engine, overrides={"limiter": LocalLimiter()})
    return app


async def test_no_key_is_401_before_the_body_is_read(app, hanging_client):
    elapsed = await hanging_client.call(app, "/v1/chat/completions", timeout_s=2)
    assert hanging_client.status == 401
    assert hanging_client.json()["error"]["code"] == "missing_api_key"
    assert hanging_client.receive_calls == 0 and elapsed < 1.0


@pytest.mark.parametrize(
    ("method", "path", "root_path"),
    [
        # A route prefix (root_path): Starlette routes on the path without it.
        ("GET", "/api/v1/models", "/api"),
        ("POST", "/api/v1/chat/completions", "/api"),
        ("GET", "/api/v1/models/fake-model", "/api"),
        # Shapes the router does not serve: refused before the router says 404 either way.
        ("GET", "//v1/models", ""),
        ("GET", "/v1/models/", ""),
        ("GET", "/v1/%6dodels", ""),  # a server that left the path undecoded
        ("POST", "/V1/chat/completions", ""),
        ("GET", "/not-a-route", ""),
    ],
)
async def test_no_bypass_shape_reaches_a_route_without_a_key(app, hanging_client, method, path, root_path):
    await hanging_client.call(app, path, method=method, root_path=root_path, timeout_s=2)
    assert hanging_client.status == 401, hanging_client.json()
    assert hanging_client.json()["error"]["type"] == "authentication_error"
    assert hanging_client.receive_calls == 0


@pytest.mark.parametrize(
    ("path", "root_path"),
    [("/health", ""), ("/ready", ""), ("/openapi.json", ""), ("/api/health", "/api")],
)
async def test_probes_and_schema_stay_open(app, hanging_client, path, root_path):
    await hanging_client.call(app, path, method="GET", root_path=root_path, timeout_s=2)
    assert hanging_client.status in (200, 503)  # /ready may say "not yet": never 401


async def test_a_key_reaches_the_route_under_a_root_path(app, hanging_client):
    await hanging_client.call(
        app, "/api/v1/models", method="GET", root_path="/api", headers={"authorization": f"Bearer {GOOD}"}
    )
    assert hanging_client.status == 200
