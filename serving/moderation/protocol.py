"""Wire models of ``POST /v1/moderations`` (OpenAI-compatible)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.core.protocol import OpenAIRequestBody

MAX_INPUTS = 64
MAX_INPUT_CHARS = 32_768


class TextInput(BaseModel):
    """A text part of a multi-modal input (the only kind served here)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str = Field(max_length=MAX_INPUT_CHARS)


class ModerationRequest(OpenAIRequestBody):
    """The request body: one text, a list of texts, or a list of text parts."""

    model_config = ConfigDict(extra="forbid")

    input: (
        Annotated[str, Field(max_length=MAX_INPUT_CHARS)]
        | Annotated[list[Annotated[str, Field(max_length=MAX_INPUT_CHARS)]], Field(min_length=1, max_length=MAX_INPUTS)]
        | Annotated[list[TextInput], Field(min_length=1, max_length=MAX_INPUTS)]
    ) = Field(..., description="Text(s) to classify.")
    model: str | None = Field(None, min_length=1, max_length=128)

    def texts(self) -> list[str]:
        """The inputs as a list of strings."""
        if isinstance(self.input, str):
            return [self.input]
        return [item if isinstance(item, str) else item.text for item in self.input]

    def params(self) -> list[str]:
        """The ``param`` naming each text of ``texts()`` in an error (``input``, ``input.1``, ``input.1.text``)."""
        if isinstance(self.input, str):
            return ["input"]
        return [f"input.{i}" if isinstance(item, str) else f"input.{i}.text" for i, item in enumerate(self.input)]


class ModerationResult(BaseModel):
    """The verdict on one input. ``flagged`` is true when the policy would block it."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]


class ModerationResponse(BaseModel):
    """The response body."""

    id: str
    model: str
    results: list[ModerationResult]
