"""The quality check's summary: accuracy, agreement with a reference, latency; text and JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from serving.quality.compare import Agreement, compare_runs
from serving.quality.prompts import PromptSet
from serving.quality.results import QualityRun


@dataclass(frozen=True)
class QualitySummary:
    """What an operator reads before switching a model version."""

    model: str
    source: str
    prompt_set: str
    cases: int
    correct: int
    errors: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    stopped: int = 0  # answers that ended on their own (finish_reason "stop")
    reference: str | None = None
    exact: int | None = None
    close: int | None = None
    agreement: list[Agreement] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Share of cases whose answer contains an expected answer."""
        return self.correct / self.cases if self.cases else 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready mapping (accuracy included)."""
        data = asdict(self)
        data["accuracy"] = round(self.accuracy, 4)
        return data


def summarize(run: QualityRun, prompt_set: PromptSet, reference: QualityRun | None = None) -> QualitySummary:
    """Score ``run`` against the expected answers and, if given, the reference run."""
    cases = {case.id: case for case in prompt_set.cases}
    wrong = [a.id for a in run.answers if a.error is None and not cases[run.case_of(a)].is_correct(a.text)]
    errors = sum(1 for a in run.answers if a.error is not None)
    latencies = sorted(a.latency_s for a in run.answers if a.latency_s is not None)
    agreement = compare_runs(run, reference) if reference is not None else []
    return QualitySummary(
        model=run.model,
        source=run.source,
        prompt_set=run.prompt_set,
        cases=len(run.answers),
        correct=len(run.answers) - len(wrong) - errors,
        errors=errors,
        latency_p50_s=_quantile(latencies, 0.50),
        latency_p95_s=_quantile(latencies, 0.95),
        stopped=sum(1 for a in run.answers if a.finish_reason == "stop"),
        reference=reference.source if reference is not None else None,
        exact=sum(a.exact for a in agreement) if reference is not None else None,
        close=sum(a.close for a in agreement) if reference is not None else None,
        agreement=agreement,
        wrong=wrong,
    )


def render_text(summary: QualitySummary, run: QualityRun) -> str:
    """A short human report, one line per case at the end."""
    lines = [
        f"quality check: prompt set {summary.prompt_set!r} ({summary.cases} cases), "
        f"model {summary.model} at {summary.source}",
        f"accuracy: {summary.correct}/{summary.cases} ({summary.accuracy:.1%}); errors: {summary.errors}; "
        f"stopped on their own: {summary.stopped}/{summary.cases}",
        "decoding: " + ("greedy (temperature 0)" if run.greedy else "the server's own sampling defaults"),
    ]
    if summary.reference is not None:
        lines.append(
            f"agreement with {summary.reference}: exact {summary.exact}/{summary.cases}, "
            f"close (top-{run.top_k}) {summary.close}/{summary.cases}"
        )
    if summary.latency_p50_s is not None:
        lines.append(
            f"latency (whole answer): p50 {summary.latency_p50_s * 1000:.0f} ms, "
            f"p95 {summary.latency_p95_s * 1000:.0f} ms"
        )
    agreement = {a.id: a for a in summary.agreement}
    for answer in run.answers:
        verdict = "error" if answer.error else ("wrong" if answer.id in summary.wrong else "right")
        match = agreement.get(answer.id)
        tag = "" if match is None else (" exact" if match.exact else " close" if match.close else " DIFFERS")
        shown = answer.error or answer.text.replace("\n", " ")[:70]
        lines.append(f"  {answer.id:<22} {verdict:<5}{tag:<8} {shown!r}")
        if match is not None and not match.exact:
            lines.append(f"  {'':<22} {match.detail}")
    return "\n".join(lines)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]
