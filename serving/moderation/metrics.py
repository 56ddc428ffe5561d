"""Moderation metrics (prefix ``serving_moderation_``), recorded at the verdict.

Exported through ``ray.serve.metrics`` (``ray_`` prefix on Ray's metrics port). Labels
are bounded: model, stage (input, output, api) and category (from the configured
rules, the four PII kinds and the classifier's categories). A small in-process tally
mirrors the counters for tests.
"""

from __future__ import annotations

from collections import Counter as Tally

from ray.serve.metrics import Counter

INPUT = "input"
OUTPUT = "output"
API = "api"


class ModerationMetrics:
    """Checks, blocks and flags by stage and category."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._checks = Counter(
            "serving_moderation_checks",
            description="Moderation verdicts by stage and outcome (passed, flagged, blocked).",
            tag_keys=("model", "stage", "outcome"),
        )
        self._blocks = Counter(
            "serving_moderation_blocks",
            description="Inputs refused and streams cut by the moderation policy, by category.",
            tag_keys=("model", "stage", "category"),
        )
        self._flags = Counter(
            "serving_moderation_flags",
            description="Detections reported without blocking, by category.",
            tag_keys=("model", "stage", "category"),
        )
        self._classifier_errors = Counter(
            "serving_moderation_classifier_errors",
            description="Classifier calls that failed or timed out (the rules still applied).",
            tag_keys=("model",),
        )
        self.tally: Tally[tuple[str, str, str]] = Tally()

    def verdict(self, stage: str, *, blocked: tuple[str, ...], flagged: tuple[str, ...]) -> None:
        """Count one verdict with its blocking and flagged categories."""
        outcome = "blocked" if blocked else ("flagged" if flagged else "passed")
        self._checks.inc(1, tags={"model": self.model, "stage": stage, "outcome": outcome})
        self.tally[("check", stage, outcome)] += 1
        for category in blocked:
            self._blocks.inc(1, tags={"model": self.model, "stage": stage, "category": category})
            self.tally[("block", stage, category)] += 1
        for category in flagged:
            self._flags.inc(1, tags={"model": self.model, "stage": stage, "category": category})
            self.tally[("flag", stage, category)] += 1

    def classifier_error(self) -> None:
        """A classifier call failed; the request went on with the rules' verdict."""
        self._classifier_errors.inc(1, tags={"model": self.model})
        self.tally[("classifier_error", "", "")] += 1

    def count(self, kind: str, stage: str | None = None, label: str | None = None) -> int:
        """How many events matched (for tests and debugging)."""
        return sum(n for (k, s, c), n in self.tally.items() if k == kind and stage in (None, s) and label in (None, c))
