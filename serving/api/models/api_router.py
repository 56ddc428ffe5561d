"""Routes of ``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

from typing import Callable, Sequence

from fastapi import APIRouter

from serving.api.models.protocol import ModelCard, ModelList
from serving.engine.protocol import ModelInfo
from serving.errors import ModelNotFoundError


def build_router(models: Callable[[], Sequence[ModelInfo]]) -> APIRouter:
    """The models router listing whatever ``models()`` returns."""
    router = APIRouter(tags=["models"])

    @router.get("/v1/models", response_model=ModelList)
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard.from_info(info) for info in models()])

    @router.get("/v1/models/{model_id:path}", response_model=ModelCard)
    async def retrieve_model(model_id: str) -> ModelCard:
        for info in models():
            if info.id == model_id:
                return ModelCard.from_info(info)
        raise ModelNotFoundError(
            f"The model `{model_id}` does not exist or you do not have access to it.", param="model"
        )

    return router
