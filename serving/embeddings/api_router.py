"""Route of ``POST /v1/embeddings`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import APIRouter
from fastapi.responses import Response

from serving.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from serving.embeddings.service import EmbeddingsService

ROUTE = "/v1/embeddings"
# How many requests the forward pass that served this one carried (observes @serve.batch).
BATCH_SIZE_HEADER = "x-embeddings-batch-size"


def build_router(service: EmbeddingsService, *, dependencies: Sequence[Any] = ()) -> APIRouter:
    """The embeddings router bound to one service."""
    router = APIRouter(tags=["embeddings"], dependencies=list(dependencies))

    @router.post(ROUTE, response_model=EmbeddingResponse)
    async def create_embeddings(body: EmbeddingRequest) -> Response:
        response, batch_size = await service.create(body)
        return Response(
            content=response.model_dump_json(),
            media_type="application/json",
            headers={BATCH_SIZE_HEADER: str(batch_size)},
        )

    return router
