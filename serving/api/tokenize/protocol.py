"""Wire models of ``POST /tokenize`` and ``POST /detokenize`` (vLLM's own extension routes).

The same bodies and answers as vLLM's server, so its tools (``vllm bench serve`` aligns
its prompts with them) and clients written for it work unchanged. The token ids are the
ones this server feeds the model for the same prompt or messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from serving.api.chat_completion.protocol import ChatMessage, check_template_kwargs, check_template_options
from serving.core.protocol import OpenAIRequestBody, OpenAIResponseModel, field_error

MAX_DETOKENIZE_TOKENS = 1_000_000


class TokenizeRequest(OpenAIRequestBody):
    """Either ``prompt`` (completions) or ``messages`` (chat, template applied)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    add_special_tokens: bool | None = None  # vLLM's: the ids are what generation feeds either way
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    return_token_strs: bool = False

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_kwargs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_template_kwargs(value)

    @model_validator(mode="after")
    def _one_input(self) -> "TokenizeRequest":
        if (self.prompt is None) == (self.messages is None):
            raise field_error("prompt", "send exactly one of prompt or messages")
        if self.messages is not None:
            check_template_options(self.messages, self.add_generation_prompt, self.continue_final_message)
        return self


class TokenizeResponse(OpenAIResponseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(OpenAIRequestBody):
    model: str | None = None
    tokens: list[int] = Field(max_length=MAX_DETOKENIZE_TOKENS)


class DetokenizeResponse(OpenAIResponseModel):
    prompt: str
