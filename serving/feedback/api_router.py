"""Route of ``POST /v1/feedback`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.core.guard import RouteGuard
from serving.core.http import respond
from serving.feedback.protocol import FeedbackRequest, FeedbackResponse
from serving.feedback.service import FeedbackService

ROUTE = "/v1/feedback"


def key_id_from_state(request: Request) -> str | None:
    """The caller's key id, as the gateway's auth left it on ``request.state`` (None: no auth)."""
    return getattr(request.state, "key_id", None)


def build_router(
    service: FeedbackService,
    *,
    dependencies: Sequence[Any] = (),
    key_id_of: Callable[[Request], str | None] = key_id_from_state,
    guard: RouteGuard | None = None,
) -> APIRouter:
    """The feedback router bound to one service; ``guard`` runs the gateway's policies."""
    router = APIRouter(tags=["feedback"], dependencies=list(dependencies))
    guard = guard or RouteGuard()

    @router.post(ROUTE, response_model=FeedbackResponse, status_code=201)
    async def create_feedback(body: FeedbackRequest, request: Request) -> Response:
        async with guard.run(request, route=ROUTE) as ctx:
            stored = await service.submit(body, key_id_of(request))
        return respond(stored, ctx, status_code=201)

    return router
