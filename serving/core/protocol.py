"""Wire models shared by the OpenAI API surfaces."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from serving.core.schema_bounds import schema_error

MAX_STOP_SEQUENCES = 4
# Longest stop sequence: the engine holds back as much output as the longest one, so an
# unbounded one would hold back the whole stream (vLLM's stop-string buffer).
MAX_STOP_CHARS = 256
MAX_N = 16


class OpenAIRequestModel(BaseModel):
    """Base of request bodies: unknown fields are rejected, like OpenAI does."""

    model_config = ConfigDict(extra="forbid")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: Any) -> tuple[tuple[str | int, ...], str, int] | None:
    """Where the first lone surrogate in decoded JSON ``value`` is: (path, text, index), or None."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            found = None if item.isascii() else _LONE_SURROGATE.search(item)
            if found is not None:
                return path, item, found.start()
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                stack.append((path + (key,), child))
                stack.append((path + (key,), key))  # a key is checked before its value
        elif isinstance(item, list):
            stack.extend((path + (i,), child) for i, child in reversed(list(enumerate(item))))
    return None


def reject_lone_surrogates(value: Any) -> Any:
    """``value`` unchanged, or a validation error at the string holding a lone UTF-16 surrogate.

    JSON's ``\\ud800`` escape decodes to a code point that has no UTF-8 encoding: the
    tokenizer, the logs and the response would all fail on it later (a 500), so it is a
    400 here, naming the field.
    """
    found = _lone_surrogate(value)
    if found is None:
        return value
    path, text, index = found
    message = f"the text has a lone surrogate (U+{ord(text[index]):04X}) at character {index}, not valid Unicode"
    error = PydanticCustomError("invalid_unicode", message)
    raise ValidationError.from_exception_data("invalid_unicode", [InitErrorDetails(type=error, loc=path, input=text)])


def field_error(field: str, message: str) -> ValidationError:
    """A validation error of a whole-body rule, placed at ``field`` (the 400's ``param``)."""
    error = PydanticCustomError("invalid_value", message)
    return ValidationError.from_exception_data("invalid_value", [InitErrorDetails(type=error, loc=(field,), input=None)])


class OpenAIRequestBody(OpenAIRequestModel):
    """Base of a route's whole request body: every string in it must be valid Unicode."""

    @field_validator("*", mode="before")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        # Before the field's own validation, on the decoded JSON: the error names the exact
        # place (messages.0.content), whatever union or nested model the field is.
        return reject_lone_surrogates(value)


class OpenAIResponseModel(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid")


class StreamOptions(OpenAIRequestModel):
    """``stream_options``: only include_usage is defined by OpenAI."""

    include_usage: bool = False
    include_obfuscation: bool | None = None


# Bounds of vLLM's structured outputs (``structured_outputs``): the engine compiles each
# into a grammar per request, before any token is sampled.
MAX_PATTERN_CHARS = 4096  # a regex
MAX_GRAMMAR_CHARS = 64 * 1024  # an EBNF / Lark grammar
MAX_CHOICES = 256
MAX_CHOICE_CHARS = 1024
# vLLM's ``request_id``: echoed in logs and the x-request-id header, so printable and short.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,128}$")


class StructuredOutputs(OpenAIRequestModel):
    """vLLM's ``structured_outputs``: constrain the output to one of these (exactly one).

    ``json``: a JSON schema (an object, or its JSON text); ``regex``; ``choice``: one of
    these strings; ``grammar``: an EBNF grammar (xgrammar's dialect, as vLLM); ``json_object``.
    """

    json_: dict[str, Any] | str | None = Field(None, alias="json")
    regex: str | None = Field(None, min_length=1, max_length=MAX_PATTERN_CHARS)
    choice: list[str] | None = Field(None, min_length=1, max_length=MAX_CHOICES)
    grammar: str | None = Field(None, min_length=1, max_length=MAX_GRAMMAR_CHARS)
    json_object: bool | None = None

    @field_validator("choice")
    @classmethod
    def _choices(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not c or len(c) > MAX_CHOICE_CHARS for c in value):
            raise ValueError(f"every choice must be 1 to {MAX_CHOICE_CHARS} characters long")
        return value

    @field_validator("json_")
    @classmethod
    def _schema(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
        if isinstance(value, str):
            if len(value) > MAX_GRAMMAR_CHARS:
                raise ValueError(f"the schema is longer than {MAX_GRAMMAR_CHARS} characters")
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"the schema is not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise ValueError("the schema must be a JSON object")
        if value is not None:
            reason = schema_error(value)
            if reason is not None:
                raise ValueError(reason)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "StructuredOutputs":
        given = [name for name in ("json_", "regex", "choice", "grammar") if getattr(self, name) is not None]
        if self.json_object:
            given.append("json_object")
        if len(given) != 1:
            raise ValueError("set exactly one of json, regex, choice, grammar or json_object")
        return self

    def kind(self) -> tuple[str, Any]:
        """(which constraint, its value): ``("json", schema)``, ``("regex", pattern)``, ..."""
        if self.json_ is not None:
            return "json", self.json_
        for name in ("regex", "choice", "grammar"):
            if getattr(self, name) is not None:
                return name, getattr(self, name)
        return "json_object", True


class SamplingFields(OpenAIRequestBody):
    """Parameters shared by chat and completions requests.

    OpenAI's, then vLLM's extension parameters (as vLLM's own server accepts them; see the
    README's API table).
    """

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # int64, as vLLM's own API
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    # vLLM's extensions
    top_k: int | None = Field(None, ge=-1, description="0 or -1: off")
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)
    length_penalty: float = Field(1.0, description="beam search only (vLLM): no effect here, as on vLLM without beam search")
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    structured_outputs: StructuredOutputs | None = None
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1)
    request_id: str | None = None

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str | None) -> str | None:
        if value is not None and not _REQUEST_ID.match(value):
            raise ValueError("request_id must be 1 to 128 letters, digits or ._:/@+=-")
        return value

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
        sequences = [value] if isinstance(value, str) else value or []
        if any(len(s) > MAX_STOP_CHARS for s in sequences):
            raise ValueError(f"a stop sequence may be at most {MAX_STOP_CHARS} characters long")
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
        "use_beam_search",
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
