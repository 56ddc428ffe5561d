"""The app factory: one FastAPI app from validated settings and an engine (no globals).

Every feature is plugged in by ``serving.extensions.FEATURES`` through ``compose``;
this factory and the Ray Serve deployments read only that list.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from fastapi import FastAPI

from serving import __version__
from serving.api.chat_completion.api_router import build_router as chat_router
from serving.api.chat_completion.serving import OpenAIServingChat
from serving.api.completion.api_router import build_router as completion_router
from serving.api.completion.serving import OpenAIServingCompletion
from serving.api.errors import register_error_handlers
from serving.api.health.api_router import build_router as health_router
from serving.api.health.readiness import Readiness
from serving.api.models.api_router import build_router as models_router
from serving.api.tokenize.api_router import build_router as tokenize_router
from serving.config.settings import Settings
from serving.core.extension import BuildContext, Feature, compose
from serving.core.http import RequestIdMiddleware
from serving.core.pipeline import GenerationPipeline
from serving.engine.protocol import Engine
from serving.observability.metrics import RequestMetrics


def build_openai_app(
    settings: Settings,
    engine: Engine,
    *,
    features: Sequence[Feature] | None = None,
    engine_is_local: bool = True,
    handles: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    metrics: RequestMetrics | None = None,
    echo_request_id: bool = True,
) -> FastAPI:
    """The OpenAI-compatible app serving ``engine`` with every feature the settings switch on.

    ``features`` defaults to ``serving.extensions.FEATURES``; ``handles`` are the Serve
    handles of the features' extra deployments; ``overrides`` give features in-process
    parts instead (tests); ``metrics`` replaces the Ray-backed request metrics (tests read
    them from a Prometheus registry). ``app.state.extensions`` holds the composition: close it on
    shutdown.
    """
    if features is None:
        from serving.extensions import FEATURES

        features = FEATURES
    ctx = BuildContext(
        settings=settings,
        engine=engine,
        engine_is_local=engine_is_local,
        handles=dict(handles or {}),
        overrides=dict(overrides or {}),
    )
    extensions = compose(features, ctx)
    app = FastAPI(title="llm-serving", version=__version__, docs_url=None, redoc_url=None)
    metrics = metrics or RequestMetrics(engine.info.id, version=engine.info.version)
    pipeline = GenerationPipeline(
        engine,
        policies=extensions.policies,
        stream_hooks=extensions.stream_hooks,
        observers=extensions.observers,
        metrics=metrics,
        request_timeout_s=settings.http.request_timeout_s,
    )
    app.state.metrics = metrics
    app.state.engine = engine
    app.state.pipeline = pipeline
    app.state.extensions = extensions
    served = engine.info.id
    app.include_router(chat_router(OpenAIServingChat(pipeline), served))
    app.include_router(completion_router(OpenAIServingCompletion(pipeline), served))
    app.include_router(models_router(lambda: [engine.info]))
    app.include_router(tokenize_router(engine, guard=ctx.route_guard))
    app.include_router(health_router(Readiness(engine)))
    for router in extensions.routers:
        app.include_router(router)
    register_error_handlers(app)
    # Starlette runs the last added middleware first: add inner ones first.
    for cls, kwargs in reversed(extensions.middlewares):
        app.add_middleware(cls, **kwargs)
    app.add_middleware(RequestIdMiddleware, echo=echo_request_id)
    return app
