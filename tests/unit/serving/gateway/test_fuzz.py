"""Schemathesis fuzzing of the app's own OpenAPI schema, in process: no input may cause a 5xx.

The gateway is on (auth with a valid key sent on every case, limits, admission,
hygiene) over the fake engine at the engine seam; the real-stack run is in
tests/integration/gateway/test_gateway_fuzz.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from tests.unit.apps import build_app, gateway_of
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine
from serving.gateway.limits.store import LocalLimiter

KEY = "sk-fuzz-0123456789abcdef"


def _fuzz_app():
    """The app under fuzzing (built at import: schemathesis parametrizes from a schema object)."""
    keys = Path(tempfile.mkdtemp(prefix="gateway-fuzz-")) / "keys.yaml"
    keys.write_text(f"keys: [{{key: {KEY}}}]")
    config = load_settings(
        {
            "model": {"deployment": {"max_ongoing_requests": 512}},
            "gateway": {
                "auth": {"enabled": True, "keys_file": str(keys)},
                "limits": {"tiers": {"default": {"rpm": 1_000_000, "tpm": 1_000_000_000, "max_concurrent": 64}}},
                "hygiene": {"max_body_bytes": 65536, "max_messages": 8, "max_chars": 4000},
            },
        }
    )
    engine = FakeEngine()
    app = build_app(config, engine, overrides={"limiter": LocalLimiter()})
    gateway = gateway_of(app)
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzz_app())


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_input_causes_a_server_error(case) -> None:
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = "fake-model"  # reach the policies and the engine, not the 404
    response = case.call(headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
