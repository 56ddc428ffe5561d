"""Server-Sent Events framing, as OpenAI sends it."""

from __future__ import annotations

from typing import Any

from serving.errors import ServingError, error_body_for

DONE = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: str) -> str:
    """One ``data:`` event carrying a JSON payload."""
    return f"data: {payload}\n\n"


def sse_error(exc: ServingError) -> str:
    """The error event sent when a stream fails after it started (then ``[DONE]``)."""
    import json

    body: dict[str, Any] = error_body_for(exc)
    return sse_event(json.dumps(body, separators=(",", ":")))
