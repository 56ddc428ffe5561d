"""Wire models shared by the OpenAI API surfaces."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP_SEQUENCES = 4
MAX_N = 16


class OpenAIRequestModel(BaseModel):
    """Base of request bodies: unknown fields are rejected, like OpenAI does."""

    model_config = ConfigDict(extra="forbid")


class OpenAIResponseModel(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid")


class StreamOptions(OpenAIRequestModel):
    """``stream_options``: only include_usage is defined by OpenAI."""

    include_usage: bool = False
    include_obfuscation: bool | None = None


class SamplingFields(OpenAIRequestModel):
    """Parameters shared by chat and completions requests."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if len(value) > MAX_STOP_SEQUENCES:
                raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
            if any(not s for s in value):
                raise ValueError("stop sequences must not be empty")
        elif value == "":
            raise ValueError("stop sequences must not be empty")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as a tuple."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class Usage(OpenAIResponseModel):
    """Token counts of a request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def new_id(prefix: str) -> str:
    """A unique response id such as ``chatcmpl-<24 hex chars>``."""
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    """Unix time in whole seconds, as OpenAI's ``created``."""
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """A ``Usage`` with the total filled in."""
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


FinishReason = Literal["stop", "length", "content_filter"]


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """The mapping without keys whose value is None."""
    return {k: v for k, v in data.items() if v is not None}


# Parameters OpenAI defines that this server does not implement: a clear 400 names them.
KNOWN_UNSUPPORTED_PARAMETERS = frozenset(
    {
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "store",
        "metadata",
        "service_tier",
        "reasoning_effort",
        "web_search_options",
        "suffix",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)
