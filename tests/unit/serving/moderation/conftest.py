"""Helpers of the moderation unit tests: settings, a scripted engine, the app with the operator loop."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from serving.api.app import build_openai_app
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.operator_loop import Operator, build_operator

UNSAFE_RULE = {"category": "test/unsafe", "terms": ["forbidden phrase"]}


@pytest.fixture
def make_client(tmp_path) -> Callable[..., tuple[httpx.AsyncClient, FakeEngine, Operator]]:
    """``make_client(overrides, reply=..., **engine_kwargs)``: an in-process app client."""
    operators: list[Operator] = []

    def make(overrides: dict[str, Any] | None = None, **engine_kwargs: Any):
        values = {"feedback": {"enabled": False}, "moderation": {"rules": [UNSAFE_RULE]}}
        for key, value in (overrides or {}).items():
            values[key] = {**values.get(key, {}), **value}
        settings = load_settings(values)
        engine = FakeEngine(FakeEngineConfig(**engine_kwargs))
        op = build_operator(settings, engine)
        operators.append(op)
        app = build_openai_app(
            settings, engine, policies=op.policies, stream_hooks=op.stream_hooks, extra_routers=op.routers
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        return client, engine, op

    yield make
    for op in operators:
        op.close()
