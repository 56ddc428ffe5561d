"""The engine's tokenizer, as the context policy counts with it (chat template included)."""

from __future__ import annotations

import inspect
from typing import Any

from serving.core.context import Tokenize

# What the context policy is given: the engine's async ``tokenize`` (a count is the
# length of its ids; the ids of the request it keeps are carried to the engine).
PromptTokenizer = Tokenize


def engine_token_counter(engine: Any) -> PromptTokenizer:
    """The engine's ``tokenize`` (``serving.engine.protocol.Engine``), which the context
    policy counts with: it runs off the event loop, so it must be a coroutine function.

    Raises TypeError when the engine has none (the feature is then not applied).
    """
    method = getattr(engine, "tokenize", None)
    if method is None or not inspect.iscoroutinefunction(method):
        raise TypeError(f"{type(engine).__name__} cannot count prompt tokens (needs an async tokenize)")

    async def tokenize(request: Any) -> tuple[int, ...]:
        return tuple(await method(request))

    return tokenize
