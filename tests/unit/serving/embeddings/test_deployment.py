"""The embeddings replica installs log redaction when it starts (no Ray, no model)."""

from __future__ import annotations

from typing import Any

import pytest

import serving.embeddings.deployment as d
from serving.config.embeddings import EmbeddingsSettings
from serving.config.privacy import PrivacySettings


def test_the_embeddings_replica_installs_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(d, "install_redaction", seen.append, raising=False)
    monkeypatch.setattr(d, "MiniLMEmbedder", lambda *args, **kwargs: object())
    monkeypatch.setattr(d, "EmbeddingsMetrics", lambda model: object())
    privacy = PrivacySettings(redact_logs=True)
    d.EmbeddingsDeployment.func_or_class(EmbeddingsSettings().model_dump(mode="json"), privacy.model_dump(mode="json"))
    assert seen == [privacy]


def test_the_bound_app_carries_the_privacy_settings() -> None:
    app = d.embeddings_app(EmbeddingsSettings(), PrivacySettings(redact_logs=False))
    assert app._bound_deployment.init_args[1] == {**PrivacySettings().model_dump(mode="json"), "redact_logs": False}
