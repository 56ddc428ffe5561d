"""Ray Serve deployments: the model server (engine + optional HTTP) and the split ingress."""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator

from ray import serve

from serving.api.app import build_openai_app
from serving.api.extensions import build_extensions
from serving.config.settings import Settings
from serving.engine.protocol import GenerateOutput, GenerateRequest, ModelInfo
from serving.engine.vllm_engine import VLLMEngine
from serving.gateway.build import build_admission
from serving.model.prepare import resolve_model_path
from serving.observability.logging import configure_logging
from serving.observability.metrics import RequestMetrics
from serving.operator_loop import OperatorHandles
from serving.privacy.log_filter import install_redaction
from serving.ray_serve.handle_engine import HandleEngine, serve_replicas_running

logger = logging.getLogger(__name__)


def start_replica_logging(settings: Settings) -> None:
    """Every replica's first step: our log format, then PII redaction of every record."""
    configure_logging(settings.logging)
    install_redaction(settings.privacy)


async def start_engine(settings: Settings) -> VLLMEngine:
    """Prepare the model files (once per node) and start vLLM with Ray metrics."""
    start_replica_logging(settings)
    model = settings.model
    engine = VLLMEngine(
        resolve_model_path(model),
        model_id=model.id,
        settings=model.engine,
        generation=model.generation,
        version=model.version,
        owned_by=model.owned_by,
        ray_metrics=True,
    )
    await engine.start()
    return engine


def build_asgi(
    settings: Settings, engine: Any, operator_handles: dict[str, Any], *, engine_is_local: bool = True
) -> tuple[Any, Any]:
    """The OpenAI app with every extension the settings switch on, and the extensions."""
    ext = build_extensions(
        settings,
        engine,
        engine_is_local=engine_is_local,
        operator_handles=OperatorHandles.from_kwargs(operator_handles),
    )
    return ext, build_openai_app(
        settings,
        engine,
        policies=ext.policies,
        stream_hooks=ext.stream_hooks,
        extra_routers=ext.routers,
        middlewares=ext.middlewares,
        metrics=RequestMetrics(engine.info.id, version=engine.info.version),
        echo_request_id=False,  # Serve's proxy echoes x-request-id itself
    )


class _EngineOwner:
    """Shared lifecycle of a replica that owns a vLLM engine."""

    engine: VLLMEngine

    async def check_health(self) -> None:
        """Serve's health check: raise if the engine cannot generate."""
        await self.engine.check_health()

    def __del__(self) -> None:
        # Serve calls this after draining in-flight requests (graceful_shutdown_timeout_s).
        extensions = getattr(self, "_extensions", None)
        if extensions is not None:
            extensions.close()
        engine = getattr(self, "engine", None)
        if engine is not None and engine._engine is not None:
            engine._engine.shutdown()


@serve.ingress()
class OpenAIModelServer(_EngineOwner):
    """Colocated topology: the OpenAI routes live in the model replica (one hop)."""

    async def __init__(self, settings: Settings, **operator_handles: Any) -> None:
        self.engine = await start_engine(settings)
        self._extensions, self._app = build_asgi(settings, self.engine, operator_handles)

    def __serve_build_asgi_app__(self) -> Any:
        return self._app


class ModelDeployment(_EngineOwner):
    """Split topology: the engine replica, streaming deltas to the ingress over a handle."""

    async def __init__(self, settings: Settings) -> None:
        self.engine = await start_engine(settings)
        self.admission = build_admission(settings, self.engine)

    def info(self) -> ModelInfo:
        return self.engine.info

    def count_prompt_tokens(self, request: GenerateRequest) -> int:
        return self.engine.count_prompt_tokens(request)

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
class OpenAIIngress:
    """Split topology: HTTP in its own (light) deployment, engine calls through a handle."""

    async def __init__(self, settings: Settings, model: Any, **operator_handles: Any) -> None:
        start_replica_logging(settings)
        info = await model.info.remote()
        self.engine = HandleEngine(model, info, replicas_running=serve_replicas_running(model))
        self._extensions, self._app = build_asgi(settings, self.engine, operator_handles, engine_is_local=False)

    def __del__(self) -> None:
        self._extensions.close()

    def __serve_build_asgi_app__(self) -> Any:
        return self._app
