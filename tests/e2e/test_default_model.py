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
