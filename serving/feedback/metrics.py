"""Feedback metrics (prefix ``serving_feedback_``): satisfaction per model version.

``serving_feedback_submissions{model, model_version, thumbs, score}`` (thumbs: up,
down, none; score: 1..5 or none) is enough for a dashboard's satisfaction rate::

    sum by (model_version) (rate(ray_serving_feedback_submissions_total{thumbs="up"}[1h]))
    / sum by (model_version) (rate(ray_serving_feedback_submissions_total{thumbs!="none"}[1h]))
"""

from __future__ import annotations

from collections import Counter as Tally

from ray.serve.metrics import Counter


class FeedbackMetrics:
    """Submissions, refusals and response-record bookkeeping."""

    def __init__(self) -> None:
        self._submissions = Counter(
            "serving_feedback_submissions",
            description="Feedback stored, by model, model version, thumbs and score.",
            tag_keys=("model", "model_version", "thumbs", "score"),
        )
        self._rejected = Counter(
            "serving_feedback_rejected",
            description="Feedback refused, by reason (not_found, duplicate).",
            tag_keys=("reason",),
        )
        self._responses = Counter(
            "serving_feedback_responses_recorded",
            description="Response metadata records queued for the feedback store, by outcome (queued, dropped).",
            tag_keys=("model", "outcome"),
        )
        self.tally: Tally[tuple[str, ...]] = Tally()

    def submitted(self, model: str, model_version: str, thumbs: str | None, score: int | None) -> None:
        """One feedback was stored."""
        tags = {
            "model": model,
            "model_version": model_version,
            "thumbs": thumbs or "none",
            "score": str(score) if score is not None else "none",
        }
        self._submissions.inc(1, tags=tags)
        self.tally[("submitted", tags["model_version"], tags["thumbs"], tags["score"])] += 1

    def rejected(self, reason: str) -> None:
        """One feedback was refused."""
        self._rejected.inc(1, tags={"reason": reason})
        self.tally[("rejected", reason)] += 1

    def response(self, model: str, queued: bool) -> None:
        """One response record was queued (or dropped: the queue was full)."""
        outcome = "queued" if queued else "dropped"
        self._responses.inc(1, tags={"model": model, "outcome": outcome})
        self.tally[("response", outcome)] += 1
