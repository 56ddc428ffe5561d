"""The context policy: what happens when a chat request's messages exceed the context window.

``truncate_oldest`` keeps every system message and the newest other messages that fit
(the kept part starts with a user message), and reports what it dropped in the
``x-context-dropped-messages`` / ``x-context-dropped-tokens`` response headers.
``reject`` refuses with a clear 400 ``context_length_exceeded``. The budget is the
context window minus the room for the answer: ``max_tokens``, or
``reserve_output_tokens`` (at most half the window) when the request sets none. Raw prompts (completions) are
left to the engine.
"""

from __future__ import annotations

import dataclasses

from serving.config.context import ContextSettings
from serving.context.tokens import TokenCounter
from serving.engine.protocol import GenerateRequest
from serving.errors import ContextLengthExceededError
from serving.core.context import RequestContext
from serving.core.result import RequestResult

DROPPED_MESSAGES_HEADER = "x-context-dropped-messages"
DROPPED_TOKENS_HEADER = "x-context-dropped-tokens"


class ContextWindowPolicy:
    """A ``RequestPolicy`` that fits a conversation into the context window."""

    def __init__(self, settings: ContextSettings, *, max_model_len: int, count_tokens: TokenCounter) -> None:
        self.settings = settings
        self.max_model_len = max_model_len
        self.count_tokens = count_tokens

    def budget(self, request: GenerateRequest) -> int:
        """Prompt tokens allowed: the window minus max_tokens (or the reserve, at most half)."""
        if request.sampling.max_tokens is not None:
            return self.max_model_len - min(request.sampling.max_tokens, self.max_model_len)
        return self.max_model_len - min(self.settings.reserve_output_tokens, self.max_model_len // 2)

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        """Return a truncated request, raise when it cannot fit, or None when it fits."""
        request = ctx.generate
        if request is None or request.messages is None or self.settings.policy == "off":
            return None
        budget = self.budget(request)
        total = await self.count_tokens(request)
        if total <= budget:
            return None
        if self.settings.policy == "reject" or budget <= 0:
            raise self._too_long(total, budget, request)
        kept = await self._fit(request, budget)
        if kept is None:
            if request.sampling.max_tokens is None and total < self.max_model_len:
                return None  # nothing can be dropped; the engine answers in the room that is left
            raise self._too_long(total, budget, request, newest_only=True)
        truncated = dataclasses.replace(request, messages=kept)
        after = await self.count_tokens(truncated)
        dropped = len(request.messages) - len(kept)
        ctx.response_headers[DROPPED_MESSAGES_HEADER] = str(dropped)
        ctx.response_headers[DROPPED_TOKENS_HEADER] = str(total - after)
        ctx.annotations["context_dropped_messages"] = dropped
        return truncated

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        """Nothing to account."""

    async def _fit(self, request: GenerateRequest, budget: int) -> tuple[dict[str, str], ...] | None:
        """System messages plus the most newest messages that fit, or None if not even one does."""
        messages = request.messages or ()
        others = [i for i, m in enumerate(messages) if m.get("role") != "system"]
        if not others:
            return None

        async def fits(k: int) -> bool:
            keep = self._keep(messages, others, k)
            return await self.count_tokens(dataclasses.replace(request, messages=keep)) <= budget

        low, high = 0, len(others) - 1  # k = len(others) is the whole conversation: it did not fit
        while low < high:  # the largest k in [1, high] that fits; monotone in k
            mid = (low + high + 1) // 2
            if await fits(mid):
                low = mid
            else:
                high = mid - 1
        if low == 0:
            return None
        return self._keep(messages, others, low)

    @staticmethod
    def _keep(messages: tuple[dict[str, str], ...], others: list[int], k: int) -> tuple[dict[str, str], ...]:
        """System messages and the newest ``k`` others, starting at a user turn when possible."""
        newest = others[len(others) - k :]
        while len(newest) > 1 and messages[newest[0]].get("role") != "user":
            newest = newest[1:]
        keep = set(newest)
        return tuple(m for i, m in enumerate(messages) if m.get("role") == "system" or i in keep)

    def _too_long(
        self, total: int, budget: int, request: GenerateRequest, *, newest_only: bool = False
    ) -> ContextLengthExceededError:
        room = self.max_model_len - budget
        window = (
            f"the model's context window is {self.max_model_len} tokens and {room} are reserved "
            "for the answer (max_tokens)"
        )
        if newest_only:
            message = (
                f"Even the system prompt and the newest message do not fit in {budget} prompt tokens "
                f"({window}). Shorten them or lower max_tokens."
            )
        else:
            message = (
                f"This conversation has {total} prompt tokens, but only {max(budget, 0)} fit ({window}). "
                "Send fewer or shorter messages, or lower max_tokens."
            )
        return ContextLengthExceededError(message, param="messages")
