"""Every replica of the application installs log redaction when it starts (no Ray, no vLLM)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serving.config.settings import Settings
from serving.engine.protocol import ModelInfo
from serving.ray_serve import bootstrap as b
from serving.ray_serve import deployments as d

INFO = ModelInfo(id="tiny", max_model_len=128, created=0)


class _Engine:
    """Stands in for VLLMEngine: construction and start only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.info = INFO
        self._engine = None

    async def start(self) -> None:
        pass


class _Remote:
    def __init__(self, value: Any) -> None:
        self.value = value

    async def remote(self) -> Any:
        return self.value


class _ModelHandle:
    info = _Remote(INFO)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What the constructors called, in order (logging setup, redaction)."""
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(b, "configure_logging", lambda logging: seen.append(("configure_logging", logging)))
    monkeypatch.setattr(b, "install_redaction", lambda privacy: seen.append(("install_redaction", privacy)))
    monkeypatch.setattr(b, "VLLMEngine", _Engine)
    monkeypatch.setattr(b, "resolve_model_path", lambda model: "/nowhere")
    monkeypatch.setattr(b, "engine_environment", lambda engine: {})
    monkeypatch.setattr(d, "build_asgi", lambda *args, **kwargs: object())
    monkeypatch.setattr(d, "build_admission", lambda settings, engine: object())
    monkeypatch.setattr(d, "HandleEngine", lambda handle, info, **kwargs: _Engine())
    return seen


def _construct(cls: type, *args: Any) -> None:
    """Run the deployment class's own ``__init__`` (not Serve's ASGI wrapper around it)."""
    own = next(c for c in cls.__mro__ if "__init__" in c.__dict__ and "<locals>" not in c.__init__.__qualname__)
    result = own.__init__(object.__new__(own), *args)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


@pytest.mark.parametrize(
    "cls, extra",
    [(d.OpenAIModelServer, ()), (d.ModelDeployment, ()), (d.OpenAIIngress, (_ModelHandle(),))],
    ids=["colocated-model-server", "split-model", "split-ingress"],
)
def test_every_deployment_installs_redaction_after_configuring_logging(calls, cls: type, extra: tuple) -> None:
    settings = Settings()
    _construct(cls, settings, *extra)
    names = [name for name, _ in calls]
    assert "install_redaction" in names, f"{cls.__name__} does not install log redaction"
    assert names.index("configure_logging") < names.index("install_redaction")
    assert dict(calls)["install_redaction"] == settings.privacy


async def test_the_model_deployment_tokenizes_with_its_engine() -> None:
    from serving.engine.fake import FakeEngine
    from serving.engine.protocol import GenerateRequest, SamplingOptions

    model = object.__new__(d.ModelDeployment)
    model.engine = engine = FakeEngine()
    request = GenerateRequest(request_id="r", sampling=SamplingOptions(), messages=({"role": "user", "content": "a b"},))
    assert await model.tokenize(request) == engine.token_ids(request)
    assert await model.count_prompt_tokens(request) == 5 and engine.tokenize_calls == 2
