"""Counting a request's prompt tokens exactly as the engine will (chat template included)."""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable

from serving.engine.protocol import GenerateRequest

TokenCounter = Callable[[GenerateRequest], Awaitable[int]]


def engine_token_counter(engine: Any) -> TokenCounter:
    """A counter backed by the engine's tokenizer.

    Uses ``engine.count_prompt_tokens(request)`` (the vLLM adapter; sync or async),
    else ``engine.count_tokens(request)`` (the fake engine).
    """
    method = getattr(engine, "count_prompt_tokens", None) or getattr(engine, "count_tokens", None)
    if method is None:
        raise TypeError(f"{type(engine).__name__} cannot count prompt tokens (needs count_prompt_tokens)")

    async def count(request: GenerateRequest) -> int:
        result = method(request)
        if inspect.isawaitable(result):
            result = await result
        return int(result)

    return count
