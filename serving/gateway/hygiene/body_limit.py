"""An ASGI middleware that bounds request bodies: 413 over a size limit, 408 past a read deadline.

It answers from ``Content-Length`` alone when the client declares too much, and
otherwise reads the body up to the limit before the app sees it (a chunked upload
cannot slip past). The whole body must arrive within ``body_read_timeout_s``: a client
that stops sending gets 408 instead of holding a request slot. Requests the router
does not serve (unknown path, wrong method) are passed on unread: the router answers
404/405 without waiting for their body. The app receives a buffered body unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from serving.core.http import send_error_response
from serving.core.routing import serves
from serving.errors import BodyReadTimeoutError, PayloadTooLargeError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_METHODS = {"POST", "PUT", "PATCH"}
DEFAULT_BODY_READ_TIMEOUT_S = 10.0


class _TooLarge(Exception):
    """The body grew past the limit while being read."""


class BodySizeLimitMiddleware:
    """Mount with ``app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=N, body_read_timeout_s=S)``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_read_timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S,
        on_reject: Callable[[], None] | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout_s = body_read_timeout_s
        self.on_reject = on_reject
        self.on_timeout = on_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS or serves(scope) is False:
            await self.app(scope, receive, send)  # nothing to read, or the router refuses it unread
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send)
            return
        try:
            async with asyncio.timeout(self.body_read_timeout_s):  # the whole body, not each chunk
                body = await self._read(receive)
        except _TooLarge:
            await self._reject(send)
            return
        except TimeoutError:
            await self._timed_out(send)
            return
        if body is None:
            return  # the client left before sending its body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: wait for the disconnect as usual

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body (None if the client disconnected); raises ``_TooLarge`` past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _timed_out(self, send: Send) -> None:
        if self.on_timeout is not None:
            self.on_timeout()
        error = BodyReadTimeoutError(
            f"The request body did not arrive within {self.body_read_timeout_s:g} seconds."
        )
        await send_error_response(send, error, [(b"connection", b"close")])

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
