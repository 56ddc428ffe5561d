"""The embeddings feature: ``/v1/embeddings`` and its own Serve deployment."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from serving.core.extension import BuildContext, Extension

logger = logging.getLogger(__name__)

EMBEDDINGS_HANDLE = "embeddings"


def deployments(settings: Any) -> Mapping[str, Any]:
    """The embeddings deployment, when embeddings are switched on."""
    if not settings.embeddings.enabled:
        return {}
    from serving.embeddings.deployment import embeddings_app

    return {EMBEDDINGS_HANDLE: embeddings_app(settings.embeddings, settings.privacy)}


def build(ctx: BuildContext) -> Extension | None:
    """The embeddings route, backed by the deployment's handle (``embeddings.enabled``)."""
    if not ctx.settings.embeddings.enabled:
        return None
    from serving.embeddings.api_router import build_router
    from serving.embeddings.client import HandleEmbedder
    from serving.embeddings.service import EmbeddingsService

    embedder = ctx.overrides.get("embedder")
    if embedder is None and ctx.handles.get(EMBEDDINGS_HANDLE) is not None:
        embedder = HandleEmbedder(ctx.handles[EMBEDDINGS_HANDLE])
    if embedder is None:
        logger.warning("embeddings are enabled but no embeddings deployment was bound; /v1/embeddings is off")
        return None
    service = EmbeddingsService(ctx.settings.embeddings, embedder)
    return Extension(routers=[build_router(service, guard=ctx.route_guard)], components={"embedder": embedder})
