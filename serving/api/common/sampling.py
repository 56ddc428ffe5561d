"""Translating validated request bodies into engine sampling options."""

from __future__ import annotations

from typing import Any

from serving.core.context import RequestContext
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
    ``defaults``, then OpenAI's (vLLM's for its extensions). ``json_schema`` / ``json_object``
    come from ``response_format``; vLLM's ``structured_outputs`` sets the same constraints
    and regex, choice and grammar (the wire model allows only one of the two). ``default_max_tokens`` caps the output when
    ``max_tokens`` is None, within what the context leaves.
    """
    constraint: dict[str, Any] = {}
    if body.structured_outputs is not None:
        kind, value = body.structured_outputs.kind()
        if kind == "json":
            constraint = {"json_schema": value}
        elif kind == "choice":
            constraint = {"choice": tuple(value)}
        else:  # regex, grammar, json_object
            constraint = {kind: value}
    elif json_schema is not None or json_object:
        constraint = {"json_schema": json_schema, "json_object": json_object}
    top_k = _first(body.top_k, defaults.top_k, 0)
    return SamplingOptions(
        max_tokens=max_tokens,
        default_max_tokens=default_max_tokens,
        temperature=_first(body.temperature, defaults.temperature, DEFAULT_TEMPERATURE),
        top_p=_first(body.top_p, defaults.top_p, DEFAULT_TOP_P),
        top_k=0 if top_k < 0 else top_k,  # vLLM: -1 and 0 both mean off
        min_p=_first(body.min_p, defaults.min_p, 0.0),
        repetition_penalty=_first(body.repetition_penalty, defaults.repetition_penalty, 1.0),
        n=body.n,
        stop=body.stop_sequences(),
        seed=body.seed,
        presence_penalty=_first(body.presence_penalty, defaults.presence_penalty, 0.0),
        frequency_penalty=_first(body.frequency_penalty, defaults.frequency_penalty, 0.0),
        logprobs=logprobs,
        ignore_eos=body.ignore_eos,
        min_tokens=body.min_tokens,
        skip_special_tokens=body.skip_special_tokens,
        spaces_between_special_tokens=body.spaces_between_special_tokens,
        include_stop_str_in_output=body.include_stop_str_in_output,
        **constraint,
    )


def _first(*values: Any) -> Any:
    """The first value that is not None (the last one never is)."""
    return next(value for value in values if value is not None)


def include_usage(body: SamplingFields) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    return bool(body.stream_options and body.stream_options.include_usage)


def note_client_request_id(body: SamplingFields, ctx: RequestContext) -> None:
    """vLLM's body ``request_id``: kept as the request's ``client_request_id`` annotation.

    The response id stays this server's own unique id: a client's id may repeat, and
    response ids key feedback and stored responses.
    """
    if body.request_id is not None:
        ctx.annotations["client_request_id"] = body.request_id
