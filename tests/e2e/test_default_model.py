"""The real default model (SmolLM2-135M-Instruct) through the whole stack, official client."""

from __future__ import annotations

import openai

from tests.conftest import Stack


def test_capital_of_france(default_stack: Stack) -> None:
    client = openai.OpenAI(base_url=default_stack.api_base, api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["SmolLM2-135M-Instruct"]
    reply = client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=40,
    )
    assert "paris" in reply.choices[0].message.content.lower()
    assert reply.choices[0].finish_reason == "stop"  # the chat template's end token stops it
    streamed = client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=40,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == reply.choices[0].message.content


def test_readme_example_as_written_answers_paris_and_stops(default_stack: Stack) -> None:
    """The README's request exactly: only model and messages, so the served defaults decide."""
    client = openai.OpenAI(base_url=default_stack.api_base, api_key="none", max_retries=0, timeout=120)
    replies = [
        client.chat.completions.create(
            model="SmolLM2-135M-Instruct",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        for _ in range(6)
    ]
    answers = [r.choices[0].message.content for r in replies]
    assert sum("paris" in a.lower() for a in answers) >= 5, answers
    assert [r.choices[0].finish_reason for r in replies] == ["stop"] * 6, answers  # stopped on its own
    cap = default_stack.settings.model.generation.default_max_tokens
    assert all(r.usage.completion_tokens < cap for r in replies)
