"""Structured request logs: one JSON line per finished request, never any text.

The request path calls ``log_request`` once per finished request with ids, status,
latency and token counts. There is no parameter for prompt or completion text, so
no such text can reach the log. ``configure_logging`` installs the formatter on the
``serving`` logger tree (JSON lines or ``key=value`` text, per ``settings.logging``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.config.settings import LoggingSettings

# The logger tree configure_logging owns, and the request log inside it.
ROOT_LOGGER = "serving"
REQUEST_LOGGER = "serving.requests"

# Fields every LogRecord has; anything else a caller passes via ``extra`` is dropped,
# so only the structured ``fields`` mapping (built here) reaches the output.
_FIELDS_ATTR = "serving_fields"
_MAX_ID_LEN = 128


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_replica_fields())
        out.update(getattr(record, _FIELDS_ATTR, None) or {})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # the cached text: a redacting factory or filter already rewrote it
            out["exc"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """Human-readable lines: ``time level logger message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The text line for ``record`` with its structured fields appended."""
        line = super().format(record)
        fields = getattr(record, _FIELDS_ATTR, None) or {}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def configure_logging(settings: "LoggingSettings") -> logging.Logger:
    """Send the ``serving`` logger tree to stderr in the configured format and level.

    Idempotent: calling it again replaces the handler it installed before. The tree
    does not propagate to the root logger, so Ray's or uvicorn's handlers do not
    print each line a second time.
    """
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(settings.level)
    for handler in [h for h in logger.handlers if getattr(h, "_serving_handler", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.json_logs else KeyValueFormatter())
    handler._serving_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def log_request(
    logger: logging.Logger,
    *,
    request_id: str,
    model: str,
    route: str,
    status_code: int,
    outcome: str,
    latency_s: float,
    ttft_s: float | None,
    prompt_tokens: int,
    completion_tokens: int,
    key_id: str | None = None,
    finish_reason: str | None = None,
) -> None:
    """Log one finished request (ids, status, timings, token counts; no text, ever)."""
    fields: dict[str, Any] = {
        "event": "request",
        "request_id": str(request_id)[:_MAX_ID_LEN],
        "model": model,
        "route": route,
        "status_code": int(status_code),
        "outcome": outcome,
        "latency_s": round(float(latency_s), 4),
        "ttft_s": None if ttft_s is None else round(float(ttft_s), 4),
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "key_id": None if key_id is None else str(key_id)[:_MAX_ID_LEN],
        "finish_reason": finish_reason,
    }
    level = logging.WARNING if status_code >= 500 else logging.INFO
    logger.log(level, "request", extra={_FIELDS_ATTR: fields})


def _replica_fields() -> dict[str, str]:
    """The Ray Serve deployment and replica of this process, when running in one."""
    serve = sys.modules.get("ray.serve")  # never import Ray just to log
    if serve is None:
        return {}
    try:
        context = serve.get_replica_context()
    except Exception:
        return {}
    return {"deployment": context.deployment, "replica": context.replica_id.unique_id}
