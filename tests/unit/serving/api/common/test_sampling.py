"""Sampling options: the client's values, else the model's defaults, else OpenAI's."""

from __future__ import annotations

import pytest

from serving.api.chat_completion.protocol import ChatCompletionRequest
from serving.api.common.sampling import sampling_options
from serving.api.completion.protocol import CompletionRequest
from serving.engine.protocol import SamplingDefaults

MODEL_DEFAULTS = SamplingDefaults(
    temperature=0.2, top_p=0.9, top_k=20, min_p=0.05, repetition_penalty=1.1, presence_penalty=0.3, max_tokens=512
)


def chat(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)


def test_omitted_values_take_the_models_defaults() -> None:
    options = sampling_options(chat(), defaults=MODEL_DEFAULTS, max_tokens=None, logprobs=None)
    assert (options.temperature, options.top_p, options.top_k, options.min_p) == (0.2, 0.9, 20, 0.05)
    assert (options.repetition_penalty, options.presence_penalty, options.frequency_penalty) == (1.1, 0.3, 0.0)


def test_without_model_defaults_openais_apply() -> None:
    options = sampling_options(chat(), defaults=SamplingDefaults(), max_tokens=None, logprobs=None)
    assert (options.temperature, options.top_p, options.top_k, options.min_p) == (1.0, 1.0, 0, 0.0)
    assert (options.repetition_penalty, options.presence_penalty, options.frequency_penalty) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("temperature", [0.0, 1.0, 1.5])
def test_explicit_client_values_win_zero_included(temperature: float) -> None:
    body = chat(temperature=temperature, top_p=1.0, presence_penalty=0.0)
    options = sampling_options(body, defaults=MODEL_DEFAULTS, max_tokens=None, logprobs=None)
    assert (options.temperature, options.top_p, options.presence_penalty) == (temperature, 1.0, 0.0)


def test_default_max_tokens_is_carried_apart_from_the_clients() -> None:
    options = sampling_options(chat(), defaults=MODEL_DEFAULTS, max_tokens=None, default_max_tokens=512, logprobs=None)
    assert (options.max_tokens, options.default_max_tokens) == (None, 512)
    assert options.output_tokens(room=100) == 100  # the cap never exceeds what the context leaves
    assert options.output_tokens(room=2000) == 512


def test_completions_take_sampling_defaults_too() -> None:
    body = CompletionRequest(model="m", prompt="once upon")
    options = sampling_options(body, defaults=MODEL_DEFAULTS, max_tokens=body.max_tokens, logprobs=None)
    assert (options.temperature, options.top_p, options.max_tokens) == (0.2, 0.9, 16)
