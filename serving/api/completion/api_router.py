"""Route of ``POST /v1/completions`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.core.http import request_context, respond
from serving.api.completion.protocol import CompletionRequest, CompletionResponse
from serving.api.completion.serving import ROUTE, OpenAIServingCompletion


def build_router(serving: OpenAIServingCompletion, served_model: str) -> APIRouter:
    """The completions router bound to one serving object."""
    router = APIRouter(tags=["completions"])

    @router.post(ROUTE, response_model=CompletionResponse)
    async def create_completion(body: CompletionRequest, request: Request) -> Response:
        ctx = request_context(request, route=ROUTE, body=body, served_model=served_model, id_prefix="cmpl")
        return respond(await serving.create(body, ctx), ctx)

    return router
