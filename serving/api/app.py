"""The app factory: one FastAPI app from validated settings and an engine (no globals)."""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import APIRouter, FastAPI

from serving import __version__
from serving.api.chat_completion.api_router import build_router as chat_router
from serving.api.chat_completion.serving import OpenAIServingChat
from serving.api.common.http import RequestIdMiddleware
from serving.api.common.pipeline import GenerationPipeline
from serving.api.completion.api_router import build_router as completion_router
from serving.api.completion.serving import OpenAIServingCompletion
from serving.api.errors import register_error_handlers
from serving.api.health.api_router import build_router as health_router
from serving.api.health.readiness import Readiness
from serving.api.models.api_router import build_router as models_router
from serving.config.settings import Settings
from serving.engine.protocol import Engine
from serving.gateway.hooks import RequestPolicy, StreamHook
from serving.observability.metrics import RequestMetrics

# An ASGI middleware class and its keyword arguments, outermost first.
Middleware = tuple[type, dict[str, Any]]


def build_openai_app(
    settings: Settings,
    engine: Engine,
    *,
    policies: Sequence[RequestPolicy] = (),
    stream_hooks: Sequence[StreamHook] = (),
    extra_routers: Sequence[APIRouter] = (),
    middlewares: Sequence[Middleware] = (),
    metrics: RequestMetrics | None = None,
    echo_request_id: bool = True,
) -> FastAPI:
    """The OpenAI-compatible app serving ``engine``, with policies and hooks plugged in."""
    app = FastAPI(title="llm-serving", version=__version__, docs_url=None, redoc_url=None)
    metrics = metrics or RequestMetrics(engine.info.id, version=engine.info.version)
    pipeline = GenerationPipeline(
        engine,
        policies=policies,
        stream_hooks=stream_hooks,
        metrics=metrics,
        request_timeout_s=settings.http.request_timeout_s,
    )
    app.state.metrics = metrics
    app.state.engine = engine
    app.state.pipeline = pipeline
    served = engine.info.id
    app.include_router(chat_router(OpenAIServingChat(pipeline), served))
    app.include_router(completion_router(OpenAIServingCompletion(pipeline), served))
    app.include_router(models_router(lambda: [engine.info]))
    app.include_router(health_router(Readiness(engine)))
    for router in extra_routers:
        app.include_router(router)
    register_error_handlers(app)
    # Starlette runs the last added middleware first: add inner ones first.
    for cls, kwargs in reversed(list(middlewares)):
        app.add_middleware(cls, **kwargs)
    app.add_middleware(RequestIdMiddleware, echo=echo_request_id)
    return app
