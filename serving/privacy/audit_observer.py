"""The end-of-request observer that writes one audit record per generation (only when audit is on).

When a generation ends (any way: finished, cut, failed, client gone) it writes the
redacted conversation with the request's metadata, read from the ``RequestResult``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.privacy.audit import AuditLog

logger = logging.getLogger(__name__)


class AuditObserver:
    """``RequestObserver`` that appends the redacted conversation to the audit log."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log
        # Redaction and the file append run off the event loop, one writer: records keep their order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-log")

    def close(self) -> None:
        """Write what is queued, then stop the writer (replica shutdown)."""
        self._writer.shutdown(wait=True)

    def observe(self, ctx: RequestContext, result: RequestResult) -> None:
        """Write the record of a generation the engine was asked for (refused requests have none)."""
        request = ctx.generate
        if request is None or not result.engine_started:
            return
        record = {
            "event": "generation",
            "response_id": ctx.response_id,
            "request_id": ctx.request_id,
            "route": ctx.route,
            "model": ctx.model,
            "key_id": ctx.key_id,
            "messages": list(request.messages) if request.messages is not None else None,
            "prompt": request.prompt,
            "completions": list(result.texts),
            "finish_reasons": list(result.finish_reasons),
            "prompt_tokens": result.prompt_tokens,
            "latency_s": round(result.latency_s, 4),
            "outcome": result.outcome,
            "moderation": ctx.annotations.get("moderation"),
            "context_dropped_messages": ctx.annotations.get("context_dropped_messages"),
        }
        self._writer.submit(self._write, record, ctx.response_id)

    def _write(self, record: dict, response_id: str) -> None:
        try:
            self.audit_log.write(record, text_fields=("messages", "prompt", "completions"))
        except OSError:
            logger.exception("audit log write failed (response %s)", response_id)
