"""Helpers of the moderation unit tests: settings, a scripted engine, the production app."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from serving.config.settings import load_settings
from serving.core.extension import Composition
from serving.engine.fake import FakeEngine, FakeEngineConfig
from tests.unit.apps import build_app

UNSAFE_RULE = {"category": "test/unsafe", "terms": ["forbidden phrase"]}


@pytest.fixture
def make_client(tmp_path) -> Callable[..., tuple[httpx.AsyncClient, FakeEngine, Composition]]:
    """``make_client(overrides, reply=..., **engine_kwargs)``: an in-process app client, the
    engine, and the app's composed extensions."""

    def make(overrides: dict[str, Any] | None = None, **engine_kwargs: Any):
        values = {"feedback": {"enabled": False}, "moderation": {"rules": [UNSAFE_RULE]}}
        for key, value in (overrides or {}).items():
            values[key] = {**values.get(key, {}), **value}
        settings = load_settings(values)
        engine = FakeEngine(FakeEngineConfig(**engine_kwargs))
        app = build_app(settings, engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        return client, engine, app.state.extensions

    return make
