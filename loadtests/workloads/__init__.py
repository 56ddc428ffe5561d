"""Workloads kept as data, and the sessions that turn them into requests.

A workload file (YAML, beside this module) holds either single-turn ``prompts`` or
multi-turn ``conversations`` (lists of user turns sharing one ``system_prompt``), plus
optional long ``context`` paragraphs prepended to each prompt. A :class:`Session` is one
user's visit: one request for a single-turn workload, or one conversation whose history
(including the server's replies) grows turn by turn, with think time between turns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

WORKLOAD_DIR = Path(__file__).parent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContextSpec(_Strict):
    """Long-prompt material: paragraphs joined until ``words`` words, then the prompt."""

    paragraphs: list[str] = Field(min_length=1)
    words: PositiveInt = Field(description="Approximate context length in words.")
    template: str = "{context}\n\n{prompt}"


class ThinkTime(_Strict):
    """A user's pause between turns, uniform in [min_s, max_s]."""

    min_s: float = Field(0.0, ge=0)
    max_s: float = Field(0.0, ge=0)

    def draw(self, rng: random.Random) -> float:
        """One pause in seconds."""
        return rng.uniform(self.min_s, max(self.min_s, self.max_s))


class Workload(_Strict):
    """Prompts or conversations, and how requests for them are shaped."""

    name: str
    description: str = ""
    endpoint: Literal["chat", "completions"] = "chat"
    max_tokens: PositiveInt = 64
    system_prompt: str | None = None
    prompts: list[str] = Field(default_factory=list)
    conversations: list[list[str]] = Field(default_factory=list)
    context: ContextSpec | None = None
    think_time: ThinkTime = ThinkTime()

    @model_validator(mode="after")
    def _one_kind(self) -> "Workload":
        if bool(self.prompts) == bool(self.conversations):
            raise ValueError("a workload has either `prompts` or `conversations` (not both)")
        if any(not turns for turns in self.conversations):
            raise ValueError("every conversation needs at least one user turn")
        return self

    @property
    def multi_turn(self) -> bool:
        """True for conversation workloads."""
        return bool(self.conversations)

    def new_session(self, rng: random.Random, *, max_tokens: int | None = None) -> "Session":
        """A new user visit, drawn with ``rng`` (deterministic for a seeded rng)."""
        if self.multi_turn:
            turns = list(rng.choice(self.conversations))
        else:
            prompt = rng.choice(self.prompts)
            if self.context is not None:
                prompt = self.context.template.format(
                    context=_context(self.context, rng), prompt=prompt
                )
            turns = [prompt]
        return Session(self, turns, max_tokens or self.max_tokens)


def _context(spec: ContextSpec, rng: random.Random) -> str:
    """Paragraphs from a random starting point until ``spec.words`` words."""
    start = rng.randrange(len(spec.paragraphs))
    chosen: list[str] = []
    words = 0
    i = start
    while words < spec.words:
        paragraph = spec.paragraphs[i % len(spec.paragraphs)]
        chosen.append(paragraph)
        words += len(paragraph.split())
        i += 1
    return "\n\n".join(chosen)


@dataclass
class RequestSpec:
    """What one request sends: chat messages or a text prompt, and its place in a session."""

    endpoint: Literal["chat", "completions"]
    max_tokens: int
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    turn: int = 0

    def body(self, model: str, *, stream: bool, temperature: float, extra: dict[str, Any]) -> dict:
        """The JSON body of the request."""
        body: dict[str, Any] = {"model": model, "max_tokens": self.max_tokens,
                                "temperature": temperature, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.endpoint == "chat":
            body["messages"] = self.messages
        else:
            body["prompt"] = self.prompt
        return {**body, **extra}


@dataclass
class Session:
    """One user's visit: the turns to send and the history kept between them."""

    workload: Workload
    turns: list[str]
    max_tokens: int
    history: list[dict[str, str]] = field(default_factory=list)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.workload.system_prompt:
            self.history.append({"role": "system", "content": self.workload.system_prompt})

    def next_request(self, previous_reply: str | None = None) -> RequestSpec | None:
        """The next turn's request, with the previous reply added to the history."""
        if previous_reply is not None and self._next > 0:
            self.history.append({"role": "assistant", "content": previous_reply})
        if self._next >= len(self.turns):
            return None
        turn = self._next
        self.history.append({"role": "user", "content": self.turns[turn]})
        self._next += 1
        messages = [dict(m) for m in self.history]
        if self.workload.endpoint == "chat":
            return RequestSpec("chat", self.max_tokens, messages=messages, turn=turn)
        return RequestSpec("completions", self.max_tokens, prompt=_as_text(messages), turn=turn)

    @property
    def has_more(self) -> bool:
        """True while turns remain."""
        return self._next < len(self.turns)

    def think_time(self, rng: random.Random) -> float:
        """The pause before the next turn."""
        return self.workload.think_time.draw(rng)


def _as_text(messages: list[dict[str, str]]) -> str:
    """A conversation as plain text, for the completions endpoint."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def find_workload(name_or_path: str | Path) -> Path:
    """A workload file by path, or by name among the packaged workloads."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = WORKLOAD_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in WORKLOAD_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"no workload {str(name_or_path)!r} (packaged: {known})")


def load_workload(name_or_path: str | Path, *, endpoint: str | None = None) -> Workload:
    """Read and validate a workload file; ``endpoint`` overrides the file's."""
    data = yaml.safe_load(find_workload(name_or_path).read_text()) or {}
    if endpoint is not None:
        data["endpoint"] = endpoint
    return Workload.model_validate(data)
