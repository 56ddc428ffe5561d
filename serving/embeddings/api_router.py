"""Route of ``POST /v1/embeddings`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.core.guard import RouteGuard
from serving.core.http import respond
from serving.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from serving.embeddings.service import EmbeddingsService

ROUTE = "/v1/embeddings"
# How many requests the forward pass that served this one carried (observes @serve.batch).
BATCH_SIZE_HEADER = "x-embeddings-batch-size"


def build_router(
    service: EmbeddingsService, *, dependencies: Sequence[Any] = (), guard: RouteGuard | None = None
) -> APIRouter:
    """The embeddings router bound to one service; ``guard`` runs the gateway's policies."""
    router = APIRouter(tags=["embeddings"], dependencies=list(dependencies))
    guard = guard or RouteGuard()

    @router.post(ROUTE, response_model=EmbeddingResponse)
    async def create_embeddings(body: EmbeddingRequest, request: Request) -> Response:
        async with guard.run(request, route=ROUTE) as ctx:
            response, batch_size = await service.create(body)
        ctx.response_headers[BATCH_SIZE_HEADER] = str(batch_size)
        return respond(response, ctx)

    return router
