"""Wire models of ``POST /v1/chat/completions`` (OpenAI-compatible)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from serving.core.protocol import (
    FinishReason,
    OpenAIRequestModel,
    OpenAIResponseModel,
    SamplingFields,
    Usage,
)

MAX_TOP_LOGPROBS = 20
# Bounds of ``response_format.json_schema.schema``: the engine compiles it into a grammar
# per request, so an unbounded one costs memory and time before any token is sampled.
MAX_SCHEMA_BYTES = 64 * 1024  # serialized as compact JSON, UTF-8
MAX_SCHEMA_DEPTH = 32  # nested objects and arrays, the schema object itself counted


def _nesting_depth(value: Any, limit: int) -> int:
    """How deep ``value``'s objects and arrays nest (iterative; stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _schema_error(value: Any) -> str | None:
    """Why a decoded ``json_schema.schema`` is too big to accept, or None."""
    if _nesting_depth(value, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"the schema nests objects and arrays deeper than {MAX_SCHEMA_DEPTH} levels"
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_SCHEMA_BYTES:
        return f"the schema is {size} bytes as JSON; at most {MAX_SCHEMA_BYTES} are allowed"
    return None


class TextContentPart(OpenAIRequestModel):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class ChatMessage(OpenAIRequestModel):
    """One message of the conversation. ``developer`` is treated as ``system``."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextContentPart]
    name: str | None = Field(None, max_length=64)

    def text(self) -> str:
        """The content as one string (text parts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def for_template(self) -> dict[str, str]:
        """The ``{"role", "content"}`` mapping a chat template takes."""
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text()}


class JSONSchemaFormat(OpenAIRequestModel):
    """``response_format.json_schema``."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(OpenAIRequestModel):
    type: Literal["text"]


class ResponseFormatJSONObject(OpenAIRequestModel):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(OpenAIRequestModel):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
]


class ChatCompletionRequest(SamplingFields):
    """The request body of a chat completion."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None

    @field_validator("response_format", mode="before")
    @classmethod
    def _bounded_schema(cls, value: Any) -> Any:
        # On the decoded JSON, before the union: the error names the schema itself
        # (response_format.json_schema.schema), without the union's tag in the path.
        if not (isinstance(value, dict) and value.get("type") == "json_schema"):
            return value
        container = value.get("json_schema")
        if not isinstance(container, dict) or "schema" not in container:
            return value
        reason = _schema_error(container["schema"])
        if reason is None:
            return value
        error = PydanticCustomError("schema_too_large", reason)
        details = [InitErrorDetails(type=error, loc=("json_schema", "schema"), input=None)]
        raise ValidationError.from_exception_data("schema_too_large", details)

    @model_validator(mode="after")
    def _consistent(self) -> "ChatCompletionRequest":
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs to be true")
        return self

    def output_limit(self) -> int | None:
        """``max_completion_tokens`` (the new name) or ``max_tokens``."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class TopLogprobEntry(OpenAIResponseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobEntry(OpenAIResponseModel):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprobEntry]


class ChoiceLogprobs(OpenAIResponseModel):
    content: list[TokenLogprobEntry] | None
    refusal: None = None


class ChatCompletionMessage(OpenAIResponseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


class ChatCompletionChoice(OpenAIResponseModel):
    index: int
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason


class ChatCompletionResponse(OpenAIResponseModel):
    """A whole (non-streamed) chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None


class DeltaMessage(OpenAIResponseModel):
    """The increment of a streamed message: only the fields that are present."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="plain")
    def _present_only(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.role is not None:
            data["role"] = self.role
        if self.content is not None:
            data["content"] = self.content
        return data


class ChatCompletionChunkChoice(OpenAIResponseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(OpenAIResponseModel):
    """One Server-Sent Event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    system_fingerprint: str | None = None
    usage: Usage | None = None
