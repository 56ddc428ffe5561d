"""The stream hook that writes one audit record per generation (only when audit is on).

It passes the stream through untouched and collects the completion text; when the
stream ends (any way: finished, cut, failed, client gone) it writes the redacted
conversation with the request's metadata.
"""

from __future__ import annotations

import logging
import time
from typing import AsyncIterator

from serving.engine.protocol import GenerateOutput
from serving.gateway.hooks import RequestContext
from serving.privacy.audit import AuditLog

logger = logging.getLogger(__name__)


class AuditStreamHook:
    """``StreamHook`` that appends the redacted conversation to the audit log."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log

    def wrap(self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        """The same stream; the audit record is written when it ends."""
        return self._wrap(ctx, stream)

    async def _wrap(self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        texts: dict[int, str] = {}
        finish: dict[int, str] = {}
        prompt_tokens = 0
        started = time.monotonic()
        try:
            async for out in stream:
                prompt_tokens = out.prompt_tokens
                for choice in out.choices:
                    texts[choice.index] = texts.get(choice.index, "") + choice.text
                    if choice.finish_reason is not None:
                        finish[choice.index] = choice.finish_reason
                yield out
        finally:
            await _close(stream)
            self._write(ctx, texts, finish, prompt_tokens, time.monotonic() - started)

    def _write(
        self,
        ctx: RequestContext,
        texts: dict[int, str],
        finish: dict[int, str],
        prompt_tokens: int,
        latency_s: float,
    ) -> None:
        request = ctx.generate
        record = {
            "event": "generation",
            "response_id": ctx.response_id,
            "request_id": ctx.request_id,
            "route": ctx.route,
            "model": ctx.model,
            "key_id": ctx.key_id,
            "messages": list(request.messages) if request and request.messages is not None else None,
            "prompt": request.prompt if request else None,
            "completions": [texts.get(i, "") for i in range(max(texts, default=-1) + 1)],
            "finish_reasons": [finish.get(i) for i in range(max(texts, default=-1) + 1)],
            "prompt_tokens": prompt_tokens,
            "latency_s": round(latency_s, 4),
            "moderation": ctx.annotations.get("moderation"),
            "context_dropped_messages": ctx.annotations.get("context_dropped_messages"),
        }
        try:
            self.audit_log.write(record, text_fields=("messages", "prompt", "completions"))
        except OSError:
            logger.exception("audit log write failed (response %s)", ctx.response_id)


async def _close(stream: AsyncIterator[GenerateOutput]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
