"""Wire models of ``POST /v1/feedback``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.core.protocol import OpenAIRequestBody

TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,47}$"


class FeedbackRequest(OpenAIRequestBody):
    """A rating of one response: thumbs and/or a 1-5 score, an optional comment and tags."""

    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="The `id` of a completion we returned."
    )
    thumbs: Literal["up", "down"] | None = None
    score: int | None = Field(None, ge=1, le=5)
    comment: str | None = Field(None, max_length=100_000)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rated(self) -> "FeedbackRequest":
        if self.thumbs is None and self.score is None:
            raise ValueError("give a rating: thumbs ('up' or 'down') and/or score (1-5)")
        return self


class FeedbackResponse(BaseModel):
    """The stored feedback."""

    id: str
    object: Literal["feedback"] = "feedback"
    response_id: str
    created: int
    thumbs: Literal["up", "down"] | None
    score: int | None
