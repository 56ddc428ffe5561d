"""Moderation metrics (prefix ``serving_moderation_``), recorded at the verdict.

Declared in ``serving.observability.catalog`` and recorded through a ``MetricsBackend``
(by default ``ray.serve.metrics``: ``ray_`` prefix on Ray's metrics port). Labels
are bounded: model, stage (input, output, api) and category (from the configured
rules, the four PII kinds and the classifier's categories). A small in-process tally
mirrors the counters for tests.
"""

from __future__ import annotations

from collections import Counter as Tally

from serving.observability.backends import MetricsBackend, RayMetricsBackend
from serving.observability.catalog import (
    MODERATION_BLOCKS,
    MODERATION_CHECKS,
    MODERATION_CLASSIFIER_ERRORS,
    MODERATION_FLAGS,
)

INPUT = "input"
OUTPUT = "output"
API = "api"


class ModerationMetrics:
    """Checks, blocks and flags by stage and category."""

    def __init__(self, model: str, *, backend: MetricsBackend | None = None) -> None:
        self.model = model
        self.backend = backend if backend is not None else RayMetricsBackend()
        self._checks = self.backend.instrument(MODERATION_CHECKS)
        self._blocks = self.backend.instrument(MODERATION_BLOCKS)
        self._flags = self.backend.instrument(MODERATION_FLAGS)
        self._classifier_errors = self.backend.instrument(MODERATION_CLASSIFIER_ERRORS)
        self.tally: Tally[tuple[str, str, str]] = Tally()

    def verdict(self, stage: str, *, blocked: tuple[str, ...], flagged: tuple[str, ...]) -> None:
        """Count one verdict with its blocking and flagged categories."""
        outcome = "blocked" if blocked else ("flagged" if flagged else "passed")
        self._checks.record(1, {"model": self.model, "stage": stage, "outcome": outcome})
        self.tally[("check", stage, outcome)] += 1
        for category in blocked:
            self._blocks.record(1, {"model": self.model, "stage": stage, "category": category})
            self.tally[("block", stage, category)] += 1
        for category in flagged:
            self._flags.record(1, {"model": self.model, "stage": stage, "category": category})
            self.tally[("flag", stage, category)] += 1

    def classifier_error(self) -> None:
        """A classifier call failed; the request went on with the rules' verdict."""
        self._classifier_errors.record(1, {"model": self.model})
        self.tally[("classifier_error", "", "")] += 1

    def count(self, kind: str, stage: str | None = None, label: str | None = None) -> int:
        """How many events matched (for tests and debugging)."""
        return sum(n for (k, s, c), n in self.tally.items() if k == kind and stage in (None, s) and label in (None, c))
