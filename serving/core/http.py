"""HTTP glue shared by the API routes: request context, responses, request ids."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any, AsyncIterator, Sequence

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from serving.core.protocol import new_id
from serving.core.sse import SSE_HEADERS
from serving.errors import ModelNotFoundError, ServingError, error_body_for
from serving.core.context import AUTHENTICATED_KEY_ID, AUTHENTICATED_TIER, RequestContext, without_credentials

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


async def send_error_response(
    send: Any, error: ServingError, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with ``error``'s OpenAI error body straight from ASGI middleware."""
    payload = json.dumps(error_body_for(error)).encode()
    await send({
        "type": "http.response.start",
        "status": error.status_code,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *extra_headers,
        ],
    })
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def request_id_from(headers: Any) -> str:
    """The client's ``x-request-id`` if it is a sane token, else a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    if given and _VALID_REQUEST_ID.match(given):
        return given
    return f"req-{secrets.token_hex(12)}"


def request_context(request: Request, *, route: str, body: Any, served_model: str, id_prefix: str) -> RequestContext:
    """The policies' view of one request; 404 if it names a model we do not serve.

    The API key headers are left out: the context carries only the short id of the key
    the API key middleware accepted (if any), never the key.
    """
    model = getattr(body, "model", None)
    if model is not None and model != served_model:
        raise ModelNotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
    ctx = context_of(request, route=route, model=served_model, body=body, response_id=new_id(id_prefix))
    request.state.ctx = ctx
    return ctx


def context_of(request: Request, *, route: str, model: str, body: Any, response_id: str) -> RequestContext:
    """A request's context: its ids, the headers without credentials, and who is calling as
    the API key middleware left it in the scope state (key id and tier, never the key)."""
    return RequestContext(
        request_id=getattr(request.state, "request_id", None) or new_id("req"),
        response_id=response_id,
        route=route,
        model=model,
        headers=without_credentials(request.headers),
        body=body,
        key_id=getattr(request.state, AUTHENTICATED_KEY_ID, None),
        tier=getattr(request.state, AUTHENTICATED_TIER, None),
    )


def respond(result: BaseModel | AsyncIterator[str], ctx: RequestContext, *, status_code: int = 200) -> Response:
    """A JSON response for a whole result, or an SSE stream for an iterator."""
    if isinstance(result, BaseModel):
        return Response(
            content=result.model_dump_json(),
            status_code=status_code,
            media_type="application/json",
            headers=ctx.response_headers,
        )
    return StreamingResponse(
        result, media_type="text/event-stream", headers={**SSE_HEADERS, **ctx.response_headers}
    )


class RequestIdMiddleware:
    """Pure ASGI middleware: assigns ``request.state.request_id`` and echoes ``x-request-id``.

    Behind Ray Serve's proxy ``echo=False``: the proxy already sets the request's
    ``x-request-id`` (the client's, or a new one) and echoes it on the response.
    """

    def __init__(self, app: Any, echo: bool = True) -> None:
        self.app = app
        self.echo = echo

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        request_id = request_id_from(headers)
        scope.setdefault("state", {})["request_id"] = request_id
        if not self.echo:
            await self.app(scope, receive, send)
            return
        encoded = request_id.encode("latin-1")

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(REQUEST_ID_HEADER.encode(), encoded)]
            await send(message)

        await self.app(scope, receive, send_with_id)
