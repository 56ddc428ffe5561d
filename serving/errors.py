"""One exception tree for the whole stack, and the one builder of the OpenAI error body.

Client errors (4xx) carry the offending ``param``; server errors (5xx) never show
their internal message to the client. Third-party exceptions are translated into
these where they enter our code (the engine adapter, the Serve handle client).
"""

from __future__ import annotations

import re
from typing import Any


class ServingError(Exception):
    """Base of every error the stack raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None
    # What a client reads for a 5xx of this kind (None: the generic text of its status); the
    # message itself, which may hold internal detail, goes to the log only.
    public_message: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})


class ClientError(ServingError):
    """The request is wrong: 4xx, the message is shown to the client."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequestError(ClientError):
    """A parameter is missing, of the wrong type, or out of range (400)."""


class UnsupportedParameterError(InvalidRequestError):
    """A parameter OpenAI accepts but this server does not implement (400)."""

    code = "unsupported_parameter"


class ContextLengthExceededError(InvalidRequestError):
    """Prompt plus requested output do not fit the model's context window (400)."""

    code = "context_length_exceeded"


class ContentFilterError(InvalidRequestError):
    """The input was blocked by the moderation policy (400)."""

    code = "content_filter"


class AuthenticationError(ClientError):
    """Missing or wrong API key (401)."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(ClientError):
    """The key may not use this resource (403)."""

    status_code = 403
    error_type = "permission_error"


class NotFoundError(ClientError):
    """Unknown model, route or object (404)."""

    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    """The requested model is not served here (404)."""

    code = "model_not_found"


class ConflictError(ClientError):
    """The object already exists (409)."""

    status_code = 409


class PayloadTooLargeError(ClientError):
    """The request body is over the configured limit (413)."""

    status_code = 413


class BodyReadTimeoutError(ClientError):
    """The request body did not arrive within the read deadline (408)."""

    status_code = 408
    code = "request_timeout"


class RateLimitError(ClientError):
    """Over a per-key limit, or the model is full: retry later (429)."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class OverloadedError(RateLimitError):
    """The model's queue is full: retry after a short wait (429, not 503)."""

    code = "overloaded"


class ServerError(ServingError):
    """Something failed on our side (500); details go to the log, not the client."""

    status_code = 500
    error_type = "server_error"


class EngineError(ServerError):
    """The engine failed while generating (500)."""


class EngineAbortedError(EngineError):
    """The engine ended a generation itself (finish reason "abort"), not the client (500)."""

    code = "engine_aborted"


class ServiceUnavailableError(ServerError):
    """No replica can serve at all: the engine is dead or not started (503)."""

    status_code = 503
    code = "service_unavailable"


class RequestTimeoutError(ServerError):
    """Generation ran past the configured deadline (504)."""

    status_code = 504
    code = "timeout"


def error_body(
    message: str,
    *,
    error_type: str,
    param: str | None = None,
    code: str | int | None = None,
) -> dict[str, Any]:
    """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``.

    Message and param may quote client text: a lone surrogate in it becomes U+FFFD, so the
    error response itself always encodes as UTF-8.
    """
    return {"error": {"message": _encodable(message), "type": error_type, "param": _encodable(param), "code": code}}


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(text: str | None) -> str | None:
    """``text`` with every lone UTF-16 surrogate replaced by U+FFFD (the replacement character)."""
    if text is None or text.isascii():
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


def error_body_for(exc: ServingError) -> dict[str, Any]:
    """The error body a client sees for one of our errors (5xx text is generic)."""
    message = exc.message if exc.status_code < 500 else exc.public_message or _PUBLIC_5XX_MESSAGE.get(
        exc.status_code, "The server had an error while processing your request."
    )
    return error_body(message, error_type=exc.error_type, param=exc.param, code=exc.code)


_PUBLIC_5XX_MESSAGE = {
    503: "The model is not available right now. Retry later.",
    504: "The request took longer than the server's deadline.",
}
