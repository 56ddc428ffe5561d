"""Translating validated request bodies into engine sampling options."""

from __future__ import annotations

from typing import Any

from serving.api.common.protocol import SamplingFields
from serving.engine.protocol import SamplingOptions

# OpenAI's defaults where the request leaves a parameter out.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0


def sampling_options(
    body: SamplingFields,
    *,
    max_tokens: int | None,
    logprobs: int | None,
    json_schema: dict[str, Any] | None = None,
    json_object: bool = False,
) -> SamplingOptions:
    """The engine's ``SamplingOptions`` for a chat or completions body."""
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=DEFAULT_TOP_P if body.top_p is None else body.top_p,
        n=body.n,
        stop=body.stop_sequences(),
        seed=body.seed,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        logprobs=logprobs,
        json_schema=json_schema,
        json_object=json_object,
    )


def include_usage(body: SamplingFields) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    return bool(body.stream_options and body.stream_options.include_usage)
