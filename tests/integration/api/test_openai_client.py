"""The official openai client against the real stack (Ray Serve + vLLM, tiny model)."""

from __future__ import annotations

import json

import openai
import pytest
from transformers import AutoTokenizer

from tests.conftest import Stack


@pytest.fixture
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.api_base, api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
]


def test_models_list_and_retrieve(client: openai.OpenAI, stack: Stack) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == [stack.model]
    assert client.models.retrieve(stack.model).id == stack.model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_chat_usage_matches_tokenizer(client: openai.OpenAI, stack: Stack, tokenizer) -> None:
    response = client.chat.completions.create(model=stack.model, messages=MESSAGES, max_tokens=12, temperature=0)
    rendered = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert response.usage.prompt_tokens == len(tokenizer.encode(rendered, add_special_tokens=False))
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert response.usage.completion_tokens == 12
    assert 0 < response.usage.completion_tokens <= 12
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.id.startswith("chatcmpl-")


def test_stream_equals_non_stream_at_temperature_zero(client: openai.OpenAI, stack: Stack) -> None:
    whole = client.chat.completions.create(model=stack.model, messages=MESSAGES, max_tokens=20, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model=stack.model,
            messages=MESSAGES,
            max_tokens=20,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_n_choices_streamed_and_whole(client: openai.OpenAI, stack: Stack) -> None:
    whole = client.chat.completions.create(model=stack.model, messages=MESSAGES, max_tokens=8, n=3, seed=7)
    assert sorted(c.index for c in whole.choices) == [0, 1, 2]
    stream = client.chat.completions.create(model=stack.model, messages=MESSAGES, max_tokens=8, n=2, stream=True)
    finished = {c.choices[0].index for c in stream if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}


def test_stop_sequence_cuts_output(client: openai.OpenAI, stack: Stack) -> None:
    reference = client.completions.create(model=stack.model, prompt="Once upon a time", max_tokens=30, temperature=0)
    text = reference.choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), "reference output too short to pick a stop string"
    cut = client.completions.create(model=stack.model, prompt="Once upon a time", max_tokens=30, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert stop not in cut.choices[0].text
    assert text.startswith(cut.choices[0].text)


def test_json_schema_output_parses(client: openai.OpenAI, stack: Stack) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}, "score": {"type": "integer"}},
        "required": ["answer", "score"],
        "additionalProperties": False,
    }
    response = client.chat.completions.create(
        model=stack.model,
        messages=[{"role": "user", "content": "Answer in JSON."}],
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}},
    )
    data = json.loads(response.choices[0].message.content)
    assert data["answer"] in ("yes", "no") and isinstance(data["score"], int)


def test_logprobs_chat_and_completions(client: openai.OpenAI, stack: Stack) -> None:
    chat = client.chat.completions.create(
        model=stack.model, messages=MESSAGES, max_tokens=4, logprobs=True, top_logprobs=3, temperature=0
    )
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 3
        assert entry.logprob <= 0
        # at temperature 0 the sampled token is the most likely one
        assert entry.logprob == pytest.approx(max(t.logprob for t in entry.top_logprobs))
    text = client.completions.create(model=stack.model, prompt="Hello", max_tokens=4, logprobs=2, temperature=0)
    lp = text.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == text.usage.completion_tokens
    assert "".join(lp.tokens) == text.choices[0].text


def test_completions_stream_and_echo(client: openai.OpenAI, stack: Stack) -> None:
    whole = client.completions.create(model=stack.model, prompt="The sky is", max_tokens=10, temperature=0, echo=True)
    assert whole.choices[0].text.startswith("The sky is")
    chunks = list(client.completions.create(model=stack.model, prompt="The sky is", max_tokens=10, temperature=0, stream=True))
    assert "The sky is" + "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_seed_makes_sampling_reproducible(client: openai.OpenAI, stack: Stack) -> None:
    a = client.chat.completions.create(model=stack.model, messages=MESSAGES, max_tokens=10, temperature=1.0, seed=123)
    b = client.chat.completions.create(model=stack.model, messages=MESSAGES, max_tokens=10, temperature=1.0, seed=123)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.id != b.id
