"""An over-long conversation is truncated (system prompt + newest turns) and answered."""

from __future__ import annotations

import openai
from transformers import AutoTokenizer

from tests.integration.operator.conftest import OperatorStack

MAX_TOKENS = 16


def test_over_long_conversation_is_truncated_and_answered(operator_stack: OperatorStack, tiny_model_dir) -> None:
    stack = operator_stack.stack
    window = stack.settings.model.engine.max_model_len
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(40):
        messages.append({"role": "user", "content": f"Question {i}: tell me about topic number {i} in detail."})
        messages.append({"role": "assistant", "content": f"Answer {i}: topic {i} is interesting for many reasons."})
    messages.append({"role": "user", "content": "And finally, what is the newest question?"})
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))

    def count(conversation: list[dict[str, str]]) -> int:
        rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return len(tokenizer.encode(rendered, add_special_tokens=False))

    full = count(messages)
    assert full > window  # the engine alone would refuse this

    client = openai.OpenAI(base_url=stack.api_base, api_key="unused", max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(
        model=stack.model, messages=messages, max_tokens=MAX_TOKENS, temperature=0
    )
    response = raw.parse()
    dropped = int(raw.headers["x-context-dropped-messages"])
    assert 0 < dropped < len(messages) - 1
    assert int(raw.headers["x-context-dropped-tokens"]) >= full - (window - MAX_TOKENS)
    assert response.usage.prompt_tokens <= window - MAX_TOKENS
    # The kept conversation is the system prompt plus the newest messages: its size proves which.
    kept = [messages[0], *messages[1 + dropped :]]
    assert response.usage.prompt_tokens == count(kept)
    assert response.choices[0].finish_reason in ("stop", "length") and response.usage.completion_tokens > 0
