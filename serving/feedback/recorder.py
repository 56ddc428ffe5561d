"""The stream hook that records every response's metadata for feedback (no text by default).

It passes the stream through and, when the stream ends (finished, cut, failed or the
client left), queues one ``ResponseRecord`` on the store: a non-blocking put, the
database write happens on the store's background thread. With
``feedback.store_conversations`` on, the PII-redacted conversation is queued too.
"""

from __future__ import annotations

import time
from typing import AsyncIterator, Callable

from serving.engine.protocol import GenerateOutput
from serving.feedback.metrics import FeedbackMetrics
from serving.feedback.store import Conversation, FeedbackStore, ResponseRecord
from serving.gateway.hooks import RequestContext


class ResponseRecorderHook:
    """``StreamHook`` that records the response's metadata when its stream ends."""

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

    def wrap(self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        """The same stream; the record is queued when it ends."""
        return self._wrap(ctx, stream)

    async def _wrap(self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        started = ctx.annotations.get("started", time.monotonic())
        prompt_tokens = completion_tokens = 0
        finish: dict[int, str] = {}
        texts: dict[int, str] = {}
        ended = "abort"  # until the stream ends by itself or raises
        outputs = 0
        try:
            async for out in stream:
                outputs += 1
                prompt_tokens = out.prompt_tokens
                for choice in out.choices:
                    completion_tokens += choice.num_tokens
                    if choice.finish_reason is not None:
                        finish[choice.index] = choice.finish_reason
                    if self.store_conversations:
                        texts[choice.index] = texts.get(choice.index, "") + choice.text
                yield out
            ended = ""
        except Exception:
            ended = "error"
            raise
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            if outputs:  # refused before any output: the client never saw this response id
                self._record(ctx, started, prompt_tokens, completion_tokens, finish.get(0) or ended or None, texts)

    def _record(
        self,
        ctx: RequestContext,
        started: float,
        prompt_tokens: int,
        completion_tokens: int,
        reason: str | None,
        texts: dict[int, str],
    ) -> None:
        record = ResponseRecord(
            response_id=ctx.response_id,
            model=ctx.model,
            model_version=self.model_version,
            route=ctx.route,
            stream=bool(getattr(ctx.body, "stream", False)),
            latency_s=round(time.monotonic() - started, 6),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=reason,
            moderation=ctx.annotations.get("moderation"),
            key_id=ctx.key_id,
        )
        queued = self.store.record_response(record, self._conversation(ctx, texts))
        self.metrics.response(ctx.model, queued)

    def _conversation(self, ctx: RequestContext, texts: dict[int, str]) -> Conversation | None:
        if not self.store_conversations or ctx.generate is None:
            return None
        request = ctx.generate
        messages = None
        if request.messages is not None:
            messages = [{**m, "content": self.redact(m.get("content", ""))} for m in request.messages]
        prompt = self.redact(request.prompt) if request.prompt is not None else None
        completions = [self.redact(texts.get(i, "")) for i in range(max(texts, default=-1) + 1)]
        return Conversation(messages=messages, prompt=prompt, completions=completions)
