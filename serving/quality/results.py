"""What one quality run produced, per prompt, in a form that is saved and compared later."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class TokenStep(BaseModel):
    """One generated token and the top-k candidates at its position (best first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str
    top: tuple[str, ...] = ()


class Answer(BaseModel):
    """The greedy answer to one case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The case id, or '<case>#<i>' for repeated asks.")
    case: str | None = Field(None, description="The case id when ``id`` is a repeat; None: ``id``.")
    text: str
    tokens: tuple[TokenStep, ...] = ()
    finish_reason: str | None = None
    completion_tokens: int | None = None
    latency_s: float | None = Field(None, description="Request to whole answer (servers only).")
    error: str | None = Field(None, description="Why the server gave no answer (status and message).")


class QualityRun(BaseModel):
    """Every answer of one prompt set from one source (a server or the reference)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="Base URL, or 'transformers float32 <folder>' for a reference.")
    model: str
    prompt_set: str
    max_tokens: int
    top_k: int
    greedy: bool = Field(True, description="False: the server's sampling defaults applied.")
    answers: tuple[Answer, ...]

    def case_of(self, answer: Answer) -> str:
        """The prompt case an answer belongs to."""
        return answer.case or answer.id

    def by_id(self) -> dict[str, Answer]:
        """Answers keyed by case id."""
        return {answer.id: answer for answer in self.answers}

    def save(self, path: str | Path) -> None:
        """Write this run as JSON."""
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "QualityRun":
        """Read a run written by ``save``."""
        return cls.model_validate(json.loads(Path(path).read_text()))
