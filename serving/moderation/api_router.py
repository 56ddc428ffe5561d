"""Route of ``POST /v1/moderations`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.core.guard import RouteGuard
from serving.core.http import respond
from serving.moderation.protocol import ModerationRequest, ModerationResponse
from serving.moderation.service import ModerationService

ROUTE = "/v1/moderations"


def build_router(
    service: ModerationService, *, dependencies: Sequence[Any] = (), guard: RouteGuard | None = None
) -> APIRouter:
    """The moderations router bound to one service; ``guard`` runs the gateway's policies."""
    router = APIRouter(tags=["moderations"], dependencies=list(dependencies))
    guard = guard or RouteGuard()

    @router.post(ROUTE, response_model=ModerationResponse)
    async def create_moderation(body: ModerationRequest, request: Request) -> Response:
        async with guard.run(request, route=ROUTE) as ctx:
            result = await service.moderate(body)
        return respond(result, ctx)

    return router
