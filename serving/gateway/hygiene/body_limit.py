"""An ASGI middleware that refuses request bodies over a size limit with 413 (OpenAI error body).

It answers from ``Content-Length`` alone when the client declares too much, and
otherwise reads the body up to the limit before the app sees it (a chunked upload
cannot slip past). The app then receives the buffered body unchanged.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from serving.api.common.http import send_error_response
from serving.errors import PayloadTooLargeError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_METHODS = {"POST", "PUT", "PATCH"}


class BodySizeLimitMiddleware:
    """Mount with ``app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=N)``."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, on_reject: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: wait for the disconnect as usual

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        if self.on_reject is not None:
            self.on_reject()
        error = PayloadTooLargeError(
            f"Request body too large: at most {self.max_body_bytes} bytes are accepted.",
            code="request_too_large",
        )
        await send_error_response(send, error, [(b"connection", b"close")])


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
