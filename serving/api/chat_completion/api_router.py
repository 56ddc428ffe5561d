"""Route of ``POST /v1/chat/completions`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.api.chat_completion.protocol import ChatCompletionRequest, ChatCompletionResponse
from serving.api.chat_completion.serving import ROUTE, OpenAIServingChat
from serving.core.http import request_context, respond


def build_router(serving: OpenAIServingChat, served_model: str) -> APIRouter:
    """The chat completions router bound to one serving object."""
    router = APIRouter(tags=["chat"])

    @router.post(ROUTE, response_model=ChatCompletionResponse)
    async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
        ctx = request_context(request, route=ROUTE, body=body, served_model=served_model, id_prefix="chatcmpl")
        return respond(await serving.create(body, ctx), ctx)

    return router
