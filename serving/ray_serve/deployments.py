"""Ray Serve deployments: the model server (engine + optional HTTP) and the split ingress.

Start and stop are ``serving.ray_serve.bootstrap``; the app is ``build_openai_app``,
which composes ``serving.extensions.FEATURES``. The features' extra deployments arrive
as keyword arguments (their handles, by name).
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator

from ray import serve

from serving.api.app import build_openai_app
from serving.config.settings import Settings
from serving.engine.protocol import Detokenized, GenerateOutput, GenerateRequest, ModelInfo
from serving.gateway.extension import build_admission
from serving.ray_serve.bootstrap import start_engine, start_replica_logging, stop_replica
from serving.ray_serve.handle_engine import HandleEngine, serve_replicas_running

logger = logging.getLogger(__name__)


def build_asgi(settings: Settings, engine: Any, handles: dict[str, Any], *, engine_is_local: bool = True) -> Any:
    """The OpenAI app with every feature the settings switch on (``app.state.extensions``)."""
    return build_openai_app(
        settings,
        engine,
        engine_is_local=engine_is_local,
        handles=handles,
        echo_request_id=False,  # Serve's proxy echoes x-request-id itself
    )


class _Replica:
    """Shared shutdown: Serve awaits ``__del__`` after draining in-flight requests."""

    engine: Any = None
    _app: Any = None
    _stopped: bool = False

    async def __del__(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        extensions = getattr(getattr(self._app, "state", None), "extensions", None)
        await stop_replica(extensions, self.engine)


class _EngineOwner(_Replica):
    """A replica that owns a vLLM engine."""

    async def check_health(self) -> None:
        """Serve's health check: raise if the engine cannot generate."""
        await self.engine.check_health()


@serve.ingress()
class OpenAIModelServer(_EngineOwner):
    """Colocated topology: the OpenAI routes live in the model replica (one hop)."""

    async def __init__(self, settings: Settings, **handles: Any) -> None:
        self.engine = await start_engine(settings)
        self._app = build_asgi(settings, self.engine, handles)

    def __serve_build_asgi_app__(self) -> Any:
        return self._app


class ModelDeployment(_EngineOwner):
    """Split topology: the engine replica, streaming deltas to the ingress over a handle."""

    async def __init__(self, settings: Settings) -> None:
        self.engine = await start_engine(settings)
        self.admission = build_admission(settings, self.engine)

    def info(self) -> ModelInfo:
        return self.engine.info

    async def tokenize(self, request: GenerateRequest) -> tuple[int, ...]:
        """The engine's prompt token ids (its tokenizer thread; never this replica's event loop)."""
        return await self.engine.tokenize(request)

    async def count_prompt_tokens(self, request: GenerateRequest) -> int:
        return await self.engine.count_prompt_tokens(request)

    async def detokenize(self, token_ids: tuple[int, ...]) -> Detokenized:
        return await self.engine.detokenize(token_ids)

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateOutput]:
        self.admission.admit(request.request_id)  # OverloadedError -> 429 at the ingress
        try:
            async for out in self.engine.generate(request):
                yield out
        finally:
            self.admission.release(request.request_id)

    async def abort(self, request_id: str) -> None:
        await self.engine.abort(request_id)


@serve.ingress()
class OpenAIIngress(_Replica):
    """Split topology: HTTP in its own (light) deployment, engine calls through a handle."""

    async def __init__(self, settings: Settings, model: Any, **handles: Any) -> None:
        start_replica_logging(settings)
        info = await model.info.remote()
        self.engine = HandleEngine(model, info, replicas_running=serve_replicas_running(model))
        self._app = build_asgi(settings, self.engine, handles, engine_is_local=False)

    def __serve_build_asgi_app__(self) -> Any:
        return self._app
