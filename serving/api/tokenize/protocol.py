"""Wire models of ``POST /tokenize`` and ``POST /detokenize`` (vLLM's own extension routes).

The same bodies and answers as vLLM's server, so its tools (``vllm bench serve`` aligns
its prompts with them) and clients written for it work unchanged. The token ids are the
ones this server feeds the model for the same prompt or messages.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from serving.api.chat_completion.protocol import ChatMessage, ChatTemplateFields
from serving.core.protocol import OpenAIRequestBody, OpenAIResponseModel, field_error

MAX_DETOKENIZE_TOKENS = 1_000_000


class TokenizeRequest(ChatTemplateFields):
    """Either ``prompt`` (completions) or ``messages`` (chat, template applied)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    add_special_tokens: bool | None = None  # vLLM's: the ids are what generation feeds either way
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> "TokenizeRequest":
        if (self.prompt is None) == (self.messages is None):
            raise field_error("prompt", "send exactly one of prompt or messages")
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
