"""Wire models of ``POST /v1/completions`` (OpenAI-compatible, legacy text completions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from serving.core.protocol import FinishReason, OpenAIResponseModel, SamplingFields, Usage, field_error

MAX_COMPLETION_LOGPROBS = 5
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class CompletionRequest(SamplingFields):
    """The request body of a text completion (one prompt string)."""

    prompt: str | list[str]
    max_tokens: int | None = Field(DEFAULT_MAX_TOKENS, ge=1)
    logprobs: int | None = Field(None, ge=0, le=MAX_COMPLETION_LOGPROBS)
    echo: bool = False
    best_of: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "CompletionRequest":
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise field_error("min_tokens", f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})")
        return self

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported (send one request per prompt)")
        return value

    def prompt_text(self) -> str:
        """The single prompt as a string."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class CompletionLogprobs(OpenAIResponseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(OpenAIResponseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class CompletionResponse(OpenAIResponseModel):
    """A whole text completion, or one streamed chunk of it (same shape)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
