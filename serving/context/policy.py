"""The context policy: what happens when a chat request's messages exceed the context window.

``truncate_oldest`` keeps every system message and the newest other messages that fit
(the kept part starts with a user message), and reports what it dropped in the
``x-context-dropped-messages`` / ``x-context-dropped-tokens`` response headers.
``reject`` refuses with a clear 400 ``context_length_exceeded``. The budget is the
context window minus the room for the answer: ``max_tokens``, or
``reserve_output_tokens`` (at most half the window) when the request sets none. Raw prompts (completions) are
left to the engine.

Counting uses the engine's own tokenizer (async, off the event loop). The whole
conversation's ids are the request's cached ones (``serving.core.tokens``: the rate
limiter usually tokenized it already), so a conversation that fits costs no
tokenization here; when it is truncated, each candidate of the binary search is
tokenized once and the kept one's ids travel to the engine on the replacement request.
"""

from __future__ import annotations

import dataclasses

from serving.config.context import ContextSettings
from serving.context.tokens import PromptTokenizer
from serving.engine.protocol import GenerateRequest
from serving.errors import ContextLengthExceededError
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.core.tokens import prompt_token_ids

DROPPED_MESSAGES_HEADER = "x-context-dropped-messages"
DROPPED_TOKENS_HEADER = "x-context-dropped-tokens"


class ContextWindowPolicy:
    """A ``RequestPolicy`` that fits a conversation into the context window."""

    def __init__(self, settings: ContextSettings, *, max_model_len: int, count_tokens: PromptTokenizer) -> None:
        """``count_tokens``: the engine's async tokenize (``serving.context.tokens.engine_token_counter``)."""
        self.settings = settings
        self.max_model_len = max_model_len
        self.tokenize = count_tokens

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
        ids = await prompt_token_ids(ctx, self.tokenize)  # the cached ids, or tokenized (and cached) now
        assert ids is not None  # there is a request and a tokenizer
        total = len(ids)
        request = ctx.generate  # now carrying its ids (for the engine, when nothing is dropped)
        assert request is not None and request.messages is not None
        if total <= budget:
            return None
        if self.settings.policy == "reject" or budget <= 0:
            raise self._too_long(total, budget, request)
        fitted = await self._fit(request, budget)
        if fitted is None:
            if request.sampling.max_tokens is None and total < self.max_model_len:
                return None  # nothing can be dropped; the engine answers in the room that is left
            raise self._too_long(total, budget, request, newest_only=True)
        kept, ids = fitted
        # The kept conversation's ids (tokenized by the search) go to the engine with it.
        truncated = dataclasses.replace(request, messages=kept, prompt_token_ids=ids)
        after = len(ids)
        dropped = len(request.messages) - len(kept)
        ctx.response_headers[DROPPED_MESSAGES_HEADER] = str(dropped)
        ctx.response_headers[DROPPED_TOKENS_HEADER] = str(total - after)
        ctx.annotations["context_dropped_messages"] = dropped
        return truncated

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        """Nothing to account."""

    async def _fit(
        self, request: GenerateRequest, budget: int
    ) -> tuple[tuple[dict[str, str], ...], tuple[int, ...]] | None:
        """System messages plus the most newest messages that fit, with their token ids, or
        None if not even one does."""
        messages = request.messages or ()
        others = [i for i, m in enumerate(messages) if m.get("role") != "system"]
        if not others:
            return None
        fitting: dict[int, tuple[int, ...]] = {}  # k -> ids of the candidates that fit

        async def fits(k: int) -> bool:
            keep = self._keep(messages, others, k)
            ids = tuple(await self.tokenize(dataclasses.replace(request, messages=keep, prompt_token_ids=None)))
            if len(ids) <= budget:
                fitting[k] = ids
                return True
            return False

        low, high = 0, len(others) - 1  # k = len(others) is the whole conversation: it did not fit
        while low < high:  # the largest k in [1, high] that fits; monotone in k
            mid = (low + high + 1) // 2
            if await fits(mid):
                low = mid
            else:
                high = mid - 1
        if low == 0:
            return None
        return self._keep(messages, others, low), fitting[low]  # low only ever moves to a k that fit

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
