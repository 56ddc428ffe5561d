"""Feedback metrics (prefix ``serving_feedback_``): satisfaction per model version.

``serving_feedback_submissions{model, model_version, thumbs, score}`` (thumbs: up,
down, none; score: 1..5 or none) is enough for a dashboard's satisfaction rate::

    sum by (model_version) (rate(ray_serving_feedback_submissions_total{thumbs="up"}[1h]))
    / sum by (model_version) (rate(ray_serving_feedback_submissions_total{thumbs!="none"}[1h]))

Declared in ``serving.observability.catalog`` and recorded through a ``MetricsBackend``
(by default ``ray.serve.metrics``: ``ray_`` prefix, ``_total`` on counters).
"""

from __future__ import annotations

from collections import Counter as Tally

from serving.observability.backends import MetricsBackend, RayMetricsBackend
from serving.observability.catalog import FEEDBACK_REJECTED, FEEDBACK_RESPONSES_RECORDED, FEEDBACK_SUBMISSIONS


class FeedbackMetrics:
    """Submissions, refusals and response-record bookkeeping."""

    def __init__(self, *, backend: MetricsBackend | None = None) -> None:
        self.backend = backend if backend is not None else RayMetricsBackend()
        self._submissions = self.backend.instrument(FEEDBACK_SUBMISSIONS)
        self._rejected = self.backend.instrument(FEEDBACK_REJECTED)
        self._responses = self.backend.instrument(FEEDBACK_RESPONSES_RECORDED)
        self.tally: Tally[tuple[str, ...]] = Tally()

    def submitted(self, model: str, model_version: str, thumbs: str | None, score: int | None) -> None:
        """One feedback was stored."""
        tags = {
            "model": model,
            "model_version": model_version,
            "thumbs": thumbs or "none",
            "score": str(score) if score is not None else "none",
        }
        self._submissions.record(1, tags)
        self.tally[("submitted", tags["model_version"], tags["thumbs"], tags["score"])] += 1

    def rejected(self, reason: str) -> None:
        """One feedback was refused."""
        self._rejected.record(1, {"reason": reason})
        self.tally[("rejected", reason)] += 1

    def response(self, model: str, queued: bool) -> None:
        """One response record was queued (or dropped: the queue was full)."""
        outcome = "queued" if queued else "dropped"
        self._responses.record(1, {"model": model, "outcome": outcome})
        self.tally[("response", outcome)] += 1
