"""Registers the exception handlers: every error leaves as an OpenAI error body."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.core.protocol import KNOWN_UNSUPPORTED_PARAMETERS
from serving.errors import ServingError, error_body, error_body_for
from serving.observability.logging import REQUEST_LOGGER, log_request

logger = logging.getLogger(__name__)
request_log = logging.getLogger(REQUEST_LOGGER)


def _headers(request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
    ctx = getattr(request.state, "ctx", None)
    headers = dict(ctx.response_headers) if ctx is not None else {}
    headers.update(extra or {})
    return headers


def _record(request: Request, status: int, outcome: str) -> None:
    """Count and log a request refused before it reached the generation pipeline."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is None or getattr(request.state, "ctx", None) is not None:
        return  # the pipeline already recorded it
    # The route template as OpenAPI writes it ("/v1/models/{model_id}"): a bounded label.
    route = getattr(request.scope.get("route"), "path_format", "unmatched")
    record = metrics.start(route)
    record.finish(status_code=status, outcome=outcome, prompt_tokens=0, completion_tokens=0)
    log_request(
        request_log,
        request_id=getattr(request.state, "request_id", "-"),
        model=metrics.model_id,
        route=route,
        status_code=status,
        outcome=outcome,
        latency_s=time.monotonic() - record.start,
        ttft_s=None,
        prompt_tokens=0,
        completion_tokens=0,
    )


JSON_INVALID = "We could not parse the JSON body of your request. The body must be valid JSON."
BODY_NOT_OBJECT = "The request body must be a JSON object, sent with Content-Type: application/json."
# FastAPI's own 400 when decoding the body raised (invalid UTF-8, nesting too deep).
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    """An OpenAI error body naming the first offending parameter."""
    errors = exc.errors()
    first = errors[0] if errors else {"type": "invalid", "loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return error_body(JSON_INVALID, error_type="invalid_request_error")
    if param is None and kind in ("model_attributes_type", "dict_type"):
        return error_body(BODY_NOT_OBJECT, error_type="invalid_request_error")
    if kind == "extra_forbidden":
        name = loc[-1] if loc else "?"
        if len(loc) == 1 and name in KNOWN_UNSUPPORTED_PARAMETERS:
            return error_body(
                f"The parameter '{name}' is not supported by this server.",
                error_type="invalid_request_error",
                param=param,
                code="unsupported_parameter",
            )
        return error_body(
            f"Unrecognized request argument supplied: {param}",
            error_type="invalid_request_error",
            param=param,
        )
    if kind == "missing":
        message = f"Missing required parameter: '{param}'." if param else "A request body is required."
        return error_body(message, error_type="invalid_request_error", param=param)
    message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}." if param else str(first.get("msg"))
    return error_body(message, error_type="invalid_request_error", param=param, code="invalid_value")


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers that turn every exception into an OpenAI error response."""

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, exc: ServingError) -> JSONResponse:
        outcome = "rate_limited" if exc.status_code == 429 else ("client_error" if exc.status_code < 500 else "server_error")
        _record(request, exc.status_code, outcome)
        if exc.status_code >= 500 and getattr(request.state, "ctx", None) is None:
            logger.error("request %s: %s", getattr(request.state, "request_id", "?"), exc.message)
        return JSONResponse(error_body_for(exc), status_code=exc.status_code, headers=_headers(request, exc.headers))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        _record(request, 400, "client_error")
        return JSONResponse(validation_error_body(exc), status_code=400, headers=_headers(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        _record(request, exc.status_code, "client_error")
        if exc.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}."
            body = error_body(message, error_type="invalid_request_error", code="unknown_url")
        elif exc.status_code == 405:
            body = error_body(
                f"Method {request.method} is not allowed for {request.url.path}.",
                error_type="invalid_request_error",
                code="method_not_allowed",
            )
        elif exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_ERROR:
            body = error_body(JSON_INVALID, error_type="invalid_request_error")
        else:
            body = error_body(str(exc.detail), error_type="invalid_request_error")
        return JSONResponse(body, status_code=exc.status_code, headers=_headers(request, dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request %s failed", getattr(request.state, "request_id", "?"), exc_info=exc)
        _record(request, 500, "server_error")
        body = error_body("The server had an error while processing your request.", error_type="server_error")
        return JSONResponse(body, status_code=500, headers=_headers(request))
