"""The end-of-request observer that records every response's metadata for feedback (no text by default).

When a generation ends (finished, cut, failed or the client left) it queues one
``ResponseRecord`` on the store, read from the request's ``RequestResult``: a
non-blocking put, the database write happens on the store's background thread. With
``feedback.store_conversations`` on, the conversation is queued too and PII-redacted by
the store's writer thread before it is written.
"""

from __future__ import annotations

from typing import Callable

from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.feedback.metrics import FeedbackMetrics
from serving.feedback.store import Conversation, FeedbackStore, ResponseRecord


class ResponseRecorder:
    """``RequestObserver`` that records the response's metadata when the request ends."""

    def __init__(
        self,
        store: FeedbackStore,
        *,
        model_version: str,
        metrics: FeedbackMetrics,
        store_conversations: bool = False,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.model_version = model_version
        self.metrics = metrics
        self.store_conversations = store_conversations
        self.redact = redact or (lambda text: text)

    def observe(self, ctx: RequestContext, result: RequestResult) -> None:
        """Queue the record; a request refused before any output is not recorded (the
        client never saw its response id)."""
        if not result.outputs:
            return
        reason = result.finish_reason
        if reason is None:
            reason = "error" if result.outcome not in ("ok", "aborted") else "abort"
        record = ResponseRecord(
            response_id=ctx.response_id,
            model=ctx.model,
            model_version=self.model_version,
            route=ctx.route,
            stream=bool(getattr(ctx.body, "stream", False)),
            latency_s=round(result.latency_s, 6),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            finish_reason=reason,
            moderation=ctx.annotations.get("moderation"),
            key_id=ctx.key_id,
        )
        queued = self.store.record_response(record, self._conversation(ctx, result))
        self.metrics.response(ctx.model, queued)

    def _conversation(self, ctx: RequestContext, result: RequestResult) -> Conversation | None:
        if not self.store_conversations or ctx.generate is None:
            return None
        request = ctx.generate
        messages = [dict(m) for m in request.messages] if request.messages is not None else None
        # Redacted by the store's writer thread (a PII scan is CPU work: never on the event loop).
        return Conversation(messages=messages, prompt=request.prompt, completions=list(result.texts), redact=self.redact)
