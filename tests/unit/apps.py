"""Unit tests build the app the way production does: ``build_openai_app`` over
``serving.extensions.FEATURES``, with a fake engine at the seam.

``build_app`` is that builder plus two test-only cares: a feedback database left at
its default (the user's ``~/.cache``) is moved to the test's temporary folder, and
every app built is closed (feedback writer, audit writer) when its test ends
(``tests/unit/conftest.py``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

from fastapi import FastAPI

from serving.api.app import build_openai_app
from serving.config.feedback import DEFAULT_DATABASE_URL
from serving.config.settings import Settings, load_settings
from serving.core.extension import Extension, Feature
from serving.engine.protocol import Engine
from serving.extensions import FEATURES

BUILT: list[FastAPI] = []
_TMP: list[Path] = []


def build_app(settings: Settings | Mapping[str, Any], engine: Engine, **kwargs: Any) -> FastAPI:
    """The production app for ``settings`` (a tree or a mapping) on ``engine``."""
    if not isinstance(settings, Settings):
        settings = load_settings(settings)
    if settings.feedback.enabled and settings.feedback.database_url == DEFAULT_DATABASE_URL:
        folder = Path(_TMP[-1] if _TMP else tempfile.mkdtemp(prefix="feedback-"))
        feedback = settings.feedback.model_copy(update={"database_url": f"sqlite:///{folder}/feedback.sqlite3"})
        settings = settings.model_copy(update={"feedback": feedback})
    app = build_openai_app(settings, engine, **kwargs)
    BUILT.append(app)
    return app


def close_all() -> None:
    """Close every app built since the last call."""
    while BUILT:
        BUILT.pop().state.extensions.close()


def gateway_of(app: FastAPI) -> SimpleNamespace:
    """The gateway feature's parts in ``app``: ``policies``, ``middlewares``, ``metrics``."""
    ext = app.state.extensions.by_feature["gateway"]
    return SimpleNamespace(policies=ext.policies, middlewares=ext.middlewares, metrics=ext.components["gateway_metrics"])


def plus(**parts: Any) -> tuple[Feature, ...]:
    """The production features and one more, built from ``parts`` (``Extension`` fields),
    last in the list: how a test adds a policy, a stream hook or an observer."""
    return (*FEATURES, Feature("test", lambda _ctx: Extension(**parts)))


class CapturePolicy:
    """A policy that only remembers every context it was given (what the policies before it left)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def before(self, ctx: Any) -> None:
        self.seen.append(ctx)

    async def after(self, ctx: Any, result: Any) -> None:
        return None
