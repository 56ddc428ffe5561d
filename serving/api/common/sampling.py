"""Translating validated request bodies into engine sampling options."""

from __future__ import annotations

from typing import Any

from serving.core.protocol import SamplingFields
from serving.engine.protocol import SamplingDefaults, SamplingOptions

# OpenAI's defaults where the request and the model leave a parameter out.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0


def sampling_options(
    body: SamplingFields,
    *,
    defaults: SamplingDefaults,
    max_tokens: int | None,
    logprobs: int | None,
    default_max_tokens: int | None = None,
    json_schema: dict[str, Any] | None = None,
    json_object: bool = False,
) -> SamplingOptions:
    """The engine's ``SamplingOptions`` for a chat or completions body.

    A parameter the client sent wins (0 included); one it left out takes the model's
    ``defaults``, then OpenAI's. ``default_max_tokens`` caps the output when
    ``max_tokens`` is None, within what the context leaves.
    """
    return SamplingOptions(
        max_tokens=max_tokens,
        default_max_tokens=default_max_tokens,
        temperature=_first(body.temperature, defaults.temperature, DEFAULT_TEMPERATURE),
        top_p=_first(body.top_p, defaults.top_p, DEFAULT_TOP_P),
        top_k=_first(defaults.top_k, 0),
        min_p=_first(defaults.min_p, 0.0),
        repetition_penalty=_first(defaults.repetition_penalty, 1.0),
        n=body.n,
        stop=body.stop_sequences(),
        seed=body.seed,
        presence_penalty=_first(body.presence_penalty, defaults.presence_penalty, 0.0),
        frequency_penalty=_first(body.frequency_penalty, defaults.frequency_penalty, 0.0),
        logprobs=logprobs,
        json_schema=json_schema,
        json_object=json_object,
    )


def _first(*values: Any) -> Any:
    """The first value that is not None (the last one never is)."""
    return next(value for value in values if value is not None)


def include_usage(body: SamplingFields) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    return bool(body.stream_options and body.stream_options.include_usage)
