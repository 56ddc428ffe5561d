"""Route of ``POST /v1/moderations`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import APIRouter

from serving.moderation.protocol import ModerationRequest, ModerationResponse
from serving.moderation.service import ModerationService

ROUTE = "/v1/moderations"


def build_router(service: ModerationService, *, dependencies: Sequence[Any] = ()) -> APIRouter:
    """The moderations router bound to one service."""
    router = APIRouter(tags=["moderations"], dependencies=list(dependencies))

    @router.post(ROUTE, response_model=ModerationResponse)
    async def create_moderation(body: ModerationRequest) -> ModerationResponse:
        return await service.moderate(body)

    return router
