"""Prompt sets of the quality check: questions with the answers a correct reply contains."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT_SET = PROMPTS_DIR / "default.yaml"


class PromptCase(BaseModel):
    """One question, sent as a single user message, and the answers that count as right."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    prompt: str = Field(min_length=1)
    expected: tuple[str, ...] = Field(min_length=1)

    def messages(self) -> list[dict[str, str]]:
        """The chat messages of this case."""
        return [{"role": "user", "content": self.prompt}]

    def is_correct(self, answer: str) -> bool:
        """True if ``answer`` contains one of the expected answers (case-insensitive)."""
        lowered = answer.lower()
        return any(expected.lower() in lowered for expected in self.expected)


class PromptSet(BaseModel):
    """A named list of cases with distinct ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    cases: tuple[PromptCase, ...] = Field(min_length=1)

    def model_post_init(self, _context: object) -> None:
        ids = [case.id for case in self.cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"prompt set {self.name!r}: case ids must be distinct")


def load_prompt_set(path: str | Path | None = None) -> PromptSet:
    """Read a prompt set (the shipped default when ``path`` is None)."""
    source = Path(path) if path is not None else DEFAULT_PROMPT_SET
    return PromptSet.model_validate(yaml.safe_load(source.read_text()))
