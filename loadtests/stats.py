"""Statistics of a step: percentiles, throughput, goodput, SLO verdict and SSE-buffering check.

Definitions (all times in milliseconds in the output):

- TTFT: send -> first SSE event carrying generated text.
- ITL: every gap between consecutive text events, pooled over the step's requests.
- TPOT: per request, (end-to-end - TTFT) / (output tokens - 1).
- E2E: send -> end of the response.
- Percentiles use linear interpolation between order statistics (numpy's default).
- Throughputs divide by the step's duration: its start to its last request's end.
- A request is *good* when it succeeded and met every SLO the scenario sets; ITL is
  judged by the request's mean chunk gap. Goodput = good requests / duration;
  attainment = good requests / all requests of the step (errors count as misses).
- A step *holds* the SLO when attainment >= ``min_attainment`` and the error rate is
  <= ``max_error_rate``. The highest load that held is the highest swept value such
  that it and every lower value held (one lucky step above a failure does not count).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from statistics import median
from typing import Any, Iterable, Sequence

import numpy as np

from loadtests.client import RequestResult
from loadtests.config import SLOConfig
from loadtests.shapes import StepOutcome

PERCENTILES = (50, 90, 95, 99)
FLOAT_SLACK_MS = 1e-9  # so that 150.00000000000003 ms still meets a 150 ms objective

# SSE-buffering heuristics (see `buffering`).
BURST_MIN_CHUNKS = 8
BURST_RELATIVE_GAP = 0.1
BURST_FRACTION = 0.5
SINGLE_BURST_SPAN_S = 0.001
BUFFERED_SHARE_WARN = 0.1


def distribution(values: Iterable[float], scale: float = 1.0) -> dict[str, float] | None:
    """count, mean, min, max and p50/p90/p95/p99 of ``values`` times ``scale``; None if empty."""
    data = np.asarray([v * scale for v in values if v is not None], dtype=float)
    if data.size == 0:
        return None
    out = {"count": int(data.size), "mean": float(data.mean()),
           "min": float(data.min()), "max": float(data.max())}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(data, p))
    return out


def meets_slo(result: RequestResult, slo: SLOConfig) -> bool:
    """True when the request succeeded and met every objective ``slo`` sets."""
    if not result.ok:
        return False
    checks = (
        (slo.ttft_ms, result.ttft, True),
        (slo.e2e_ms, result.e2e, True),
        (slo.itl_ms, result.mean_itl, False),  # a one-chunk answer has no gaps to judge
        (slo.tpot_ms, result.tpot, False),
    )
    for limit_ms, value_s, required in checks:
        if limit_ms is None:
            continue
        if value_s is None:
            if required:
                return False
            continue
        if value_s * 1000.0 > limit_ms + FLOAT_SLACK_MS:
            return False
    return True


def is_bursty(result: RequestResult) -> bool:
    """True when a request's text arrived in bursts rather than token by token.

    Either most gaps are far below the request's mean gap (bursts separated by long
    pauses), or many chunks arrived within one millisecond after a long wait (the whole
    answer buffered and released at once).
    """
    times = result.chunk_times
    if not result.ok or len(times) < BURST_MIN_CHUNKS:
        return False
    gaps = result.itls
    span = times[-1] - times[0]
    mean_gap = span / len(gaps)
    if span < SINGLE_BURST_SPAN_S:
        return True
    tiny = sum(1 for g in gaps if g < BURST_RELATIVE_GAP * mean_gap)
    return tiny / len(gaps) >= BURST_FRACTION


def buffering(results: Sequence[RequestResult]) -> dict[str, Any]:
    """How many streamed requests arrived in bursts, and a warning when it is common."""
    eligible = [r for r in results if r.ok and len(r.chunk_times) >= BURST_MIN_CHUNKS]
    bursty = [r for r in eligible if is_bursty(r)]
    out: dict[str, Any] = {"eligible": len(eligible), "bursty": len(bursty), "warning": None}
    if eligible and len(bursty) >= 2 and len(bursty) / len(eligible) >= BUFFERED_SHARE_WARN:
        gaps = [g for r in bursty for g in r.itls]
        out["warning"] = (
            f"SSE buffering suspected: {len(bursty)} of {len(eligible)} streamed requests "
            f"arrived in bursts (median chunk gap {median(gaps) * 1000:.2f} ms, largest "
            f"{max(gaps) * 1000:.1f} ms). Something between the engine and this client "
            "(proxy, server, middleware) is holding tokens back; if the load generator's "
            "loop lag is also high, the client itself may be the cause."
        )
    return out


@dataclass(frozen=True)
class StepStats:
    """The statistics of one step, as written to summary.json."""

    data: dict[str, Any]

    @property
    def holds(self) -> bool:
        """True when the step met the SLO."""
        return bool(self.data["slo"]["holds"])


def step_stats(outcome: StepOutcome, slo: SLOConfig, *, loop_lag: dict | None = None) -> StepStats:
    """All statistics of one step."""
    results = outcome.results
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    duration = max(outcome.duration, 1e-9)
    good = sum(1 for r in results if meets_slo(r, slo))
    total = len(results)
    error_rate = len(failed) / total if total else 0.0
    attainment = good / total if total else 0.0
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    first_wave = first_requests(results)
    in_tokens = sum(r.prompt_tokens or 0 for r in ok)
    holds = total > 0 and error_rate <= slo.max_error_rate and (
        attainment >= slo.min_attainment if slo.is_set() else True
    )
    warnings: list[str] = []
    buffered = buffering(results)
    if buffered["warning"]:
        warnings.append(buffered["warning"])
    if ok and not any(r.tokens_from_usage for r in ok):
        warnings.append("the server sent no usage: output tokens are counted as text chunks")
    if loop_lag and loop_lag.get("p99", 0) > 20:
        warnings.append(
            f"the load generator's event loop woke up late (p99 {loop_lag['p99']:.0f} ms): the "
            "client or the whole machine is saturated, so latencies include that delay"
        )
    data = {
        "label": outcome.plan.label,
        "mode": outcome.plan.mode,
        "value": outcome.plan.value,
        "duration_s": duration,
        "requests": {"total": total, "ok": len(ok), "failed": len(failed), "good": good},
        "errors_by_kind": dict(Counter(r.error_kind for r in failed)),
        "error_samples": _error_samples(failed),
        "error_rate": error_rate,
        "request_throughput": len(ok) / duration,
        "output_token_throughput": out_tokens / duration,
        "total_token_throughput": (out_tokens + in_tokens) / duration,
        "goodput": good / duration,
        "slo": {"attainment": attainment, "holds": holds},
        "tokens_from_usage": sum(1 for r in ok if r.tokens_from_usage),
        "metrics": {
            "ttft_ms": distribution((r.ttft for r in ok), 1000.0),
            # A concurrency step starts every user at once: the first wave waits for one shared
            # prefill, requests that join later for about one engine step. Their mix in
            # ttft_ms depends on how many requests a step got through, so both are kept apart.
            "ttft_first_wave_ms": distribution((r.ttft for r in ok if id(r) in first_wave), 1000.0),
            "ttft_joined_ms": distribution((r.ttft for r in ok if id(r) not in first_wave), 1000.0),
            "itl_ms": distribution((g for r in ok for g in r.itls), 1000.0),
            "tpot_ms": distribution((r.tpot for r in ok), 1000.0),
            "e2e_ms": distribution((r.e2e for r in ok), 1000.0),
            "prompt_tokens": distribution(r.prompt_tokens for r in ok),
            "output_tokens": distribution(r.output_tokens for r in ok),
        },
        "buffering": {k: v for k, v in buffered.items() if k != "warning"},
        "loop_lag_ms": loop_lag,
        "warnings": warnings,
    }
    return StepStats(data)


def first_requests(results: Sequence[RequestResult]) -> set[int]:
    """``id()`` of each user's first request of the step (the wave that starts together)."""
    first: dict[int, RequestResult] = {}
    for r in results:
        if r.user not in first or r.start < first[r.user].start:
            first[r.user] = r
    return {id(r) for r in first.values()}


def _error_samples(failed: Sequence[RequestResult], limit: int = 3) -> dict[str, list[str]]:
    """Up to ``limit`` distinct error messages per error kind."""
    samples: dict[str, list[str]] = {}
    for r in failed:
        bucket = samples.setdefault(r.error_kind or "unknown", [])
        if r.error and r.error not in bucket and len(bucket) < limit:
            bucket.append(r.error)
    return samples


def highest_holding(steps: Sequence[StepStats]) -> float | None:
    """The highest swept value that held the SLO with every lower value holding too."""
    best = None
    for stats in sorted(steps, key=lambda s: s.data["value"]):
        if not stats.holds:
            break
        best = stats.data["value"]
    return best
