"""Wire models of ``POST /v1/chat/completions`` (OpenAI-compatible)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from serving.core.protocol import (
    FinishReason,
    OpenAIRequestBody,
    OpenAIRequestModel,
    OpenAIResponseModel,
    SamplingFields,
    Usage,
    field_error,
)
from serving.core.schema_bounds import schema_error
from serving.engine.protocol import ChatTemplateOptions

MAX_TOP_LOGPROBS = 20
MAX_TEMPLATE_KWARGS = 16
MAX_TEMPLATE_KWARGS_BYTES = 4096
# Arguments of the tokenizer's apply_chat_template that requests set otherwise (or never).
RESERVED_TEMPLATE_KWARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
    "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
})


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


class ChatTemplateFields(OpenAIRequestBody):
    """vLLM's chat template extensions, on a chat completion and on ``/tokenize``."""

    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_kwargs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Few, named like template variables, none of the template call's own arguments, small.
        if value is None:
            return value
        if len(value) > MAX_TEMPLATE_KWARGS:
            raise ValueError(f"at most {MAX_TEMPLATE_KWARGS} chat_template_kwargs are allowed")
        for key in value:
            if not key.isidentifier():
                raise ValueError(f"chat_template_kwargs key {key[:64]!r} is not a template variable name")
            if key in RESERVED_TEMPLATE_KWARGS:
                raise ValueError(f"chat_template_kwargs must not set {key!r} (a parameter of its own)")
        if len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) > MAX_TEMPLATE_KWARGS_BYTES:
            raise ValueError(f"chat_template_kwargs may be at most {MAX_TEMPLATE_KWARGS_BYTES} bytes as JSON")
        return value

    @model_validator(mode="after")
    def _template_fits(self) -> "ChatTemplateFields":
        # vLLM's rules; the messages are the subclass's (None: no chat to render).
        messages = getattr(self, "messages", None)
        if self.add_generation_prompt and self.continue_final_message:
            raise field_error("continue_final_message", "continue_final_message needs add_generation_prompt set to false")
        if self.continue_final_message and messages and messages[-1].role != "assistant":
            raise field_error("continue_final_message", "continue_final_message needs the last message to be the assistant's")
        return self

    def template_options(self) -> ChatTemplateOptions:
        """How the engine renders the messages."""
        return ChatTemplateOptions(
            add_generation_prompt=self.add_generation_prompt,
            continue_final_message=self.continue_final_message,
            kwargs=dict(self.chat_template_kwargs or {}),
        )


class ChatCompletionRequest(SamplingFields, ChatTemplateFields):
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
        reason = schema_error(container["schema"])
        if reason is None:
            return value
        error = PydanticCustomError("schema_too_large", reason)
        details = [InitErrorDetails(type=error, loc=("json_schema", "schema"), input=None)]
        raise ValidationError.from_exception_data("schema_too_large", details)

    @model_validator(mode="after")
    def _consistent(self) -> "ChatCompletionRequest":
        if self.top_logprobs is not None and not self.logprobs:
            raise field_error("top_logprobs", "top_logprobs requires logprobs to be true")
        if self.response_format is not None and self.structured_outputs is not None:
            raise field_error("structured_outputs", "send response_format or structured_outputs, not both")
        limit = self.output_limit()
        if limit is not None and self.min_tokens > limit:
            raise field_error("min_tokens", f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({limit})")
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
