"""The split topology: a separate ingress deployment streams from the model over a handle."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import Stack


@pytest.fixture
def split_stack(deploy_stack) -> Stack:
    return deploy_stack({"http": {"topology": "split"}})


def test_split_streams_and_maps_errors(split_stack: Stack) -> None:
    client = openai.OpenAI(base_url=split_stack.api_base, api_key="unused", max_retries=0, timeout=60)
    messages = [{"role": "user", "content": "Hi"}]
    whole = client.chat.completions.create(model=split_stack.model, messages=messages, max_tokens=12, temperature=0)
    chunks = list(
        client.chat.completions.create(model=split_stack.model, messages=messages, max_tokens=12, temperature=0, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    # An error raised in the model replica crosses the handle as our own 4xx.
    too_long = httpx.post(
        f"{split_stack.api_base}/chat/completions",
        json={"model": split_stack.model, "messages": messages, "max_tokens": 10**6},
        timeout=60,
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    assert httpx.get(f"{split_stack.base_url}/ready", timeout=30).status_code == 200
