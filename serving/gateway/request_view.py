"""The sizes of one request that the gateway policies bound: messages, characters, output tokens.

Read from the engine request when the request path built it (``ctx.generate``),
otherwise from the validated wire body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from serving.core.context import RequestContext

CHARS_PER_TOKEN = 4  # a cheap, common estimate (no engine request); real usage corrects the reservation
TOKENS_PER_MESSAGE = 4  # chat template overhead per message


@dataclass(frozen=True)
class RequestView:
    """What the gateway measures of a request (never its text)."""

    messages: int  # chat messages (0 for a raw prompt)
    chars: int  # characters of prompt / message text
    max_tokens: int | None  # requested output tokens per choice
    n: int = 1

    def prompt_token_estimate(self) -> int:
        """An estimate of prompt tokens before tokenizing (chars / 4 + template overhead).

        Only where no exact count exists: the rate limiter reserves a generation's prompt
        with the engine's tokenization (``serving.core.tokens.prompt_token_ids``).
        """
        return math.ceil(self.chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * self.messages


def _text_of(message: Any) -> str:
    if isinstance(message, dict):
        content = message.get("content") or ""
        if isinstance(content, list):
            return "".join(str(p.get("text", "")) if isinstance(p, dict) else "" for p in content)
        return str(content)
    text = getattr(message, "text", None)
    if callable(text):
        return text()
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else ""


def _prompt_chars(prompt: Any) -> int:
    if prompt is None:
        return 0
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        # A list of strings, a list of token ids, or a list of token-id lists.
        return sum(
            len(p) if isinstance(p, str) else (len(p) * CHARS_PER_TOKEN if isinstance(p, list) else CHARS_PER_TOKEN)
            for p in prompt
        )
    return 0


def view_of(ctx: RequestContext) -> RequestView:
    """The ``RequestView`` of a request context."""
    gen = ctx.generate
    if gen is not None:
        messages = gen.messages or ()
        chars = len(gen.prompt) if gen.prompt is not None else sum(len(m.get("content", "")) for m in messages)
        return RequestView(
            messages=len(messages), chars=chars, max_tokens=gen.sampling.max_tokens, n=gen.sampling.n
        )
    body = ctx.body
    messages = getattr(body, "messages", None)
    if messages is not None:
        chars = sum(len(_text_of(m)) for m in messages)
        count = len(messages)
    else:
        chars = _prompt_chars(getattr(body, "prompt", None))
        count = 0
    limit = getattr(body, "output_limit", None)
    max_tokens = limit() if callable(limit) else getattr(body, "max_tokens", None)
    return RequestView(messages=count, chars=chars, max_tokens=max_tokens, n=getattr(body, "n", 1) or 1)
