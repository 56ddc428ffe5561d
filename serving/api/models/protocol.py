"""Wire models of ``GET /v1/models``."""

from __future__ import annotations

from typing import Literal

from serving.core.protocol import OpenAIResponseModel
from serving.engine.protocol import ModelInfo


class ModelCard(OpenAIResponseModel):
    """One served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str

    @classmethod
    def from_info(cls, info: ModelInfo) -> "ModelCard":
        return cls(id=info.id, created=info.created, owned_by=info.owned_by)


class ModelList(OpenAIResponseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
