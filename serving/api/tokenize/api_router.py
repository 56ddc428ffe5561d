"""Routes of ``POST /tokenize`` and ``POST /detokenize`` (thin: parse, delegate, respond)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.api.tokenize.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from serving.core.guard import RouteGuard
from serving.core.http import respond
from serving.engine.protocol import Engine, GenerateRequest, SamplingOptions
from serving.errors import ModelNotFoundError

TOKENIZE = "/tokenize"
DETOKENIZE = "/detokenize"


def build_router(engine: Engine, *, guard: RouteGuard | None = None) -> APIRouter:
    """The tokenizer routes of ``engine``; ``guard`` runs the gateway's policies (auth, limits)."""
    router = APIRouter(tags=["tokenize"])
    guard = guard or RouteGuard()

    def check_model(model: str | None) -> None:
        if model is not None and model != engine.info.id:
            raise ModelNotFoundError(
                f"The model `{model}` does not exist or you do not have access to it.", param="model"
            )

    @router.post(TOKENIZE, response_model=TokenizeResponse)
    async def tokenize(body: TokenizeRequest, request: Request) -> Response:
        check_model(body.model)
        async with guard.run(request, route=TOKENIZE) as ctx:
            ids = await engine.tokenize(as_generate_request(body, ctx.response_id))
            strings = list((await engine.detokenize(ids)).tokens) if body.return_token_strs else None
        result = TokenizeResponse(
            count=len(ids), max_model_len=engine.info.max_model_len, tokens=list(ids), token_strs=strings
        )
        return respond(result, ctx)

    @router.post(DETOKENIZE, response_model=DetokenizeResponse)
    async def detokenize(body: DetokenizeRequest, request: Request) -> Response:
        check_model(body.model)
        async with guard.run(request, route=DETOKENIZE) as ctx:
            decoded = await engine.detokenize(tuple(body.tokens))
        return respond(DetokenizeResponse(prompt=decoded.text), ctx)

    return router


def as_generate_request(body: TokenizeRequest, request_id: str) -> GenerateRequest:
    """The engine request whose prompt ids ``body`` asks for (nothing is generated)."""
    if body.messages is None:
        return GenerateRequest(request_id=request_id, sampling=SamplingOptions(), prompt=body.prompt)
    return GenerateRequest(
        request_id=request_id,
        sampling=SamplingOptions(),
        messages=tuple(m.for_template() for m in body.messages),
        chat_template=body.template_options(),
    )
