"""PNG plots of a run: latency percentiles vs load, throughput vs load, TTFT distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LATENCY_PNG = "latency_vs_load.png"
THROUGHPUT_PNG = "throughput_vs_load.png"
TTFT_PNG = "ttft_distribution.png"

_PANELS = (("ttft_ms", "TTFT", "ttft_ms"), ("itl_ms", "Inter-token latency", "itl_ms"),
           ("tpot_ms", "Time per output token", "tpot_ms"), ("e2e_ms", "End-to-end", "e2e_ms"))


def draw_all(summary: dict[str, Any], ttfts: dict[str, list[float]], out_dir: Path) -> list[Path]:
    """Draw every plot into ``out_dir``; returns the files written."""
    if not summary["steps"]:
        return []
    return [
        latency_vs_load(summary, out_dir / LATENCY_PNG),
        throughput_vs_load(summary, out_dir / THROUGHPUT_PNG),
        ttft_distribution(summary, ttfts, out_dir / TTFT_PNG),
    ]


def _x(summary: dict[str, Any]) -> tuple[list[float], str]:
    unit = summary["load_unit"]
    return [s["value"] for s in summary["steps"]], f"load ({unit})"


def _log_x(ax: Any, xs: list[float]) -> None:
    if len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])


def _slo_line(ax: Any, limit: float | None, data_max: float, *, horizontal: bool) -> None:
    """Draw the SLO as a red line, or only name it when it is far off the data's scale."""
    if limit is None:
        return
    if data_max and limit > 3 * data_max:
        ax.plot([], [], color="red", linewidth=1, label=f"SLO {limit:g} ms (off scale)")
    elif horizontal:
        ax.axhline(limit, color="red", linewidth=1, label=f"SLO {limit:g} ms")
    else:
        ax.axvline(limit, color="red", linewidth=1, label=f"SLO {limit:g} ms")


def latency_vs_load(summary: dict[str, Any], path: Path) -> Path:
    """p50/p90/p99 of TTFT, ITL, TPOT and E2E against the swept load, with SLO lines."""
    xs, xlabel = _x(summary)
    slo = summary["scenario"]["slo"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (metric, title, slo_key) in zip(axes.flat, _PANELS):
        for pct, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
            ys = [(s["metrics"].get(metric) or {}).get(pct, np.nan) for s in summary["steps"]]
            ax.plot(xs, ys, style, label=pct)
        _slo_line(ax, slo.get(slo_key), ax.get_ylim()[1], horizontal=True)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms")
        _log_x(ax, xs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Latency vs load - {summary['scenario']['name']} ({summary['model']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def throughput_vs_load(summary: dict[str, Any], path: Path) -> Path:
    """Requests/s and goodput (left axis) and output tokens/s (right axis) against load."""
    xs, xlabel = _x(summary)
    steps = summary["steps"]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(xs, [s["request_throughput"] for s in steps], "o-", label="requests/s")
    ax.plot(xs, [s["goodput"] for s in steps], "s--", label="goodput (requests/s in SLO)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("requests/s")
    _log_x(ax, xs)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(xs, [s["output_token_throughput"] for s in steps], "^-", color="tab:green",
               label="output tokens/s")
    right.set_ylabel("output tokens/s")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left")
    best = summary.get("highest_holding")
    if best is not None:
        ax.axvline(best, color="red", linewidth=1, alpha=0.6)
    fig.suptitle(f"Throughput vs load - {summary['scenario']['name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def ttft_distribution(
    summary: dict[str, Any], ttfts: dict[str, list[float]], path: Path
) -> Path:
    """Empirical CDF of TTFT for each step, with the TTFT SLO."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for step in summary["steps"]:
        samples = np.sort(np.asarray(ttfts.get(step["label"], []), dtype=float))
        if samples.size:
            ax.step(samples, np.arange(1, samples.size + 1) / samples.size, where="post",
                    label=f"{step['label']} (n={samples.size})")
    samples_max = max((max(v) for v in ttfts.values() if v), default=0.0)
    _slo_line(ax, summary["scenario"]["slo"].get("ttft_ms"), samples_max, horizontal=False)
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.suptitle(f"TTFT distribution - {summary['scenario']['name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
