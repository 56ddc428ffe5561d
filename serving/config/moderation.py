"""Settings of the moderation section: rules, PII actions, stream window, classifier.

The built-in baseline is pattern/blocklist rules plus PII detectors; a classifier
deployment (embedding similarity to example phrases by default, or any class with
the same ``classify`` method) can be added on top. Categories are short slugs such
as ``violence`` or ``illicit/weapons``; they become metric labels, so the set is
bounded by this configuration.
"""

from __future__ import annotations

import re
from typing import Literal

import regex
from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from serving.config.base import StrictModel

Action = Literal["block", "flag", "off"]
_CATEGORY = r"^[a-z][a-z0-9_/-]{0,63}$"
# A POSIX class inside a set: `regex` reads "[[:alpha:]]" as letters, `re` as the characters "[:alph".
_POSIX_CLASS = re.compile(r"\[:\^?[A-Za-z]+:\]")


def _compiles_in_both(pattern: str) -> None:
    """Raise ValueError unless ``pattern`` compiles with both ``re`` and ``regex`` (V0), and uses
    no syntax the two are known to read differently (POSIX classes)."""
    if _POSIX_CLASS.search(pattern):
        raise ValueError(
            f"invalid regular expression {pattern!r}: POSIX classes such as [:alpha:] mean different "
            "things to Python's re and the regex module; use \\w, \\d, \\s or an explicit set"
        )
    for engine in (re, regex):
        try:
            engine.compile(pattern, engine.IGNORECASE)
        except engine.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


class Rule(StrictModel):
    """One category of blocked content: literal terms (a blocklist) and/or regexes."""

    category: str = Field(pattern=_CATEGORY, description="The category reported when the rule matches.")
    terms: tuple[str, ...] = Field(
        (), description="Blocklist terms, matched case-insensitively on word boundaries."
    )
    patterns: tuple[str, ...] = Field(
        (),
        description="Regular expressions, matched case-insensitively (with the `regex` module; a pattern "
        "must also compile with Python's `re`: scoped flags such as `(?s:...)`, no global `(?s)`).",
    )
    action: Action = Field("block", description="block: refuse/cut; flag: report only; off: ignore.")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _compiles_in_both(pattern)
        return patterns

    @model_validator(mode="after")
    def _not_empty(self) -> "Rule":
        if not self.terms and not self.patterns:
            raise ValueError(f"rule {self.category!r} needs terms or patterns")
        try:
            _compiles_in_both(self.expression())  # the one expression the policy compiles
        except ValueError as exc:  # e.g. a global flag "(?s)", which re allows only at the start of an expression
            raise ValueError(f"rule {self.category!r}: its patterns do not combine into one expression: {exc}") from exc
        return self

    def expression(self) -> str:
        """The rule as one regular expression: its patterns, then its terms on word boundaries."""
        parts = list(self.patterns)
        if self.terms:
            parts.append(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in self.terms) + r")(?!\w)")
        return "|".join(f"(?:{p})" for p in parts)


class PIIActions(StrictModel):
    """What to do when a PII detector fires (input and output alike)."""

    email: Action = "flag"
    phone: Action = "flag"
    card: Action = "block"
    secret: Action = "block"


# A deliberately small default: operators add their own rules in the config.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        category="illicit/weapons",
        patterns=(
            r"\b(?:how\s+(?:do\s+i\s+|to\s+)|steps\s+to\s+|instructions\s+(?:for|to)\s+)"
            r"(?:make|build|assemble|synthesi[sz]e)\s+(?:a\s+|an\s+)?"
            r"(?:pipe\s+bomb|bomb|explosive\s+device|nerve\s+agent|sarin|ricin)\b",
        ),
    ),
)


class ClassifierSettings(StrictModel):
    """The classifier deployment (Ray Serve, batched) consulted after the rules."""

    enabled: bool = Field(False, description="Deploy and consult the classifier.")
    deployment_class: str = Field(
        "serving.moderation.classifier:EmbeddingSimilarityClassifier",
        description="module:Class of the classifier deployment; it must define "
        "`async classify(text: str) -> dict[str, float]` (scores per category, 0..1).",
    )
    threshold: float = Field(0.55, gt=0, le=1, description="A category scoring at least this is detected.")
    categories: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "violence": (
                "I am going to kill you",
                "I will hurt you and your family",
                "let's beat him until he bleeds",
            ),
            "self-harm": (
                "I want to kill myself",
                "the best way to hurt myself",
            ),
        },
        description="Example phrases per category (the embedding classifier's anchors).",
    )
    action: Action = Field("block", description="What a detected classifier category does.")
    max_batch_size: PositiveInt = Field(16, description="Most texts classified in one forward pass.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="How long a batch waits to fill.")
    num_cpus: PositiveFloat = Field(0.25, description="CPUs Ray reserves per classifier replica.")
    num_replicas: PositiveInt = 1
    stream_stride_chars: PositiveInt = Field(
        128, description="On streams, the classifier checks the window every this many new characters."
    )
    timeout_s: PositiveFloat = Field(5.0, description="A classifier call slower than this fails open (logged).")

    @field_validator("categories")
    @classmethod
    def _slugs(cls, categories: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, examples in categories.items():
            if not re.match(_CATEGORY, name):
                raise ValueError(f"category {name!r} must match {_CATEGORY}")
            if not examples:
                raise ValueError(f"category {name!r} needs at least one example phrase")
        return categories


class ModerationSettings(StrictModel):
    """The content-safety policy applied to inputs, outputs and /v1/moderations."""

    enabled: bool = True
    check_input: bool = Field(True, description="Refuse blocked input with 400 content_filter.")
    check_output: bool = Field(True, description="Cut a stream whose output violates the policy.")
    rules: tuple[Rule, ...] = DEFAULT_RULES
    pii: PIIActions = PIIActions()
    window_chars: PositiveInt = Field(
        512,
        description="The sliding window of recent output text that is checked as tokens arrive, and "
        "the most output text held back while it could still become a blocking match (a possible "
        "match growing longer than this releases its oldest characters; a complete one is cut).",
    )
    holdback_chars: int = Field(
        0,
        ge=0,
        description="Extra output characters held back on every stream, on top of the text that could "
        "still become a blocking match (which is always held back). 0: ordinary text streams at once.",
    )
    max_text_chars: PositiveInt = Field(
        500_000,
        description="Longest text the policy checks in one piece: the prompt/messages of a generation "
        "request (input moderation) or one /v1/moderations input. Longer text is refused with 400 "
        "`input_too_long` naming the parameter, never passed on unchecked; keep it at least "
        "gateway.hygiene.max_chars.",
    )
    max_request_chars: PositiveInt = Field(
        262_144,
        description="Most characters of all /v1/moderations inputs of one request together "
        "(400 `input_too_long` on `input` above).",
    )
    classifier: ClassifierSettings = ClassifierSettings()
    model_name: str = Field("serving-moderation-1", description="The model name /v1/moderations reports.")

    @model_validator(mode="after")
    def _window(self) -> "ModerationSettings":
        if self.holdback_chars >= self.window_chars:
            raise ValueError("holdback_chars must be smaller than window_chars")
        return self
