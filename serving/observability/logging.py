"""Structured request logs (JSON lines). INTERFACE STUB: the observability work fills it in.

Never logs prompt or completion text, nor API keys.
"""

from __future__ import annotations

import json
import logging
from typing import Any

REQUEST_LOGGER = "serving.requests"


def log_request(
    logger: logging.Logger,
    *,
    request_id: str,
    model: str,
    route: str,
    status_code: int,
    outcome: str,
    latency_s: float,
    ttft_s: float | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    key_id: str | None = None,
    finish_reason: str | None = None,
) -> None:
    """Write one JSON line describing a finished request (no text, no key)."""
    record: dict[str, Any] = {
        "event": "request",
        "request_id": request_id,
        "model": model,
        "route": route,
        "status": status_code,
        "outcome": outcome,
        "latency_ms": round(latency_s * 1000, 2),
        "ttft_ms": None if ttft_s is None else round(ttft_s * 1000, 2),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "key_id": key_id,
        "finish_reason": finish_reason,
    }
    logger.info(json.dumps(record, separators=(",", ":")))
