"""PNG plots of a run (latency percentiles, throughput and TTFT distribution vs load) and of a
benchmark's comparison (TTFT and output tokens/s vs load, one line per target)."""

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
COMPARISON_PNG = "comparison.png"

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


# (comparison key, panel title, y label, log y)
_COMPARISON_PANELS = (("ttft_p50", "TTFT p50", "ms (log scale)", True),
                      ("output_tps", "Output tokens/s", "tokens/s", False))


def comparison_vs_load(data: dict[str, Any], path: Path) -> Path:
    """TTFT p50 and output tokens/s against load, one line per target of a benchmark.

    ``data`` is a benchmark's comparison.json. Points are the median over rounds, bars
    the min-max spread; the baseline is drawn black and thicker. A target without data
    at a load (it failed, or ran fewer steps) leaves a gap there.
    """
    from loadtests.benchmark.compare import step_loads

    loads = step_loads(data["comparison"])
    labels = [label for label in data["comparison"]["steps"] if loads[label] is not None]
    xs = [loads[label] for label in labels]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    _draw_targets(axes, data["comparison"], labels, xs)
    slo = ((data.get("scenario") or {}).get("slo") or {}).get("ttft_ms")
    for ax, (key, title, ylabel, log_y) in zip(axes, _COMPARISON_PANELS):
        if key == "ttft_p50":
            _slo_line(ax, slo, ax.get_ylim()[1], horizontal=True)
        if log_y and ax.has_data():
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(_load_axis_label(data, labels))
        ax.set_ylabel(ylabel)
        if xs:
            _log_x(ax, xs)
        ax.grid(alpha=0.3, which="both")
    legend_rows = _figure_legend(fig, axes)
    fig.suptitle(_comparison_title(data), fontsize=11)
    fig.tight_layout(rect=(0, 0.04 + 0.045 * legend_rows, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _draw_targets(axes: Any, table: dict[str, Any], labels: list[str], xs: list[float]) -> None:
    """One error-bar line per target and panel; the baseline first, black and thicker."""
    targets = _targets_in_order(table)
    log_x = len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 8
    others = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for index, target in enumerate(targets):
        is_base = target == table["baseline"]
        color = "black" if is_base else next(others, None)
        at = _dodged(xs, index, len(targets), log_x)
        for ax, (key, _, _, _) in zip(axes, _COMPARISON_PANELS):
            mid, low, high = _series(table["steps"], labels, target, key)
            if np.all(np.isnan(mid)):
                continue
            ax.errorbar(at, mid, yerr=[mid - low, high - mid], color=color, capsize=3,
                        marker="s" if is_base else "o", markersize=6 if is_base else 4,
                        linewidth=2.6 if is_base else 1.3, zorder=3 if is_base else 2,
                        label=f"{target} (baseline)" if is_base else target)


def _figure_legend(fig: Any, axes: Any) -> int:
    """One legend below both panels (targets, then the SLO line); returns its rows."""
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    if not legend:
        return 0
    names = sorted(legend, key=lambda name: name.startswith("SLO"))
    columns = min(len(names), 4)
    fig.legend([legend[n] for n in names], names, loc="lower center", ncol=columns, fontsize=9,
               frameon=False)
    return -(-len(names) // columns)


def _comparison_title(data: dict[str, Any]) -> str:
    table = data["comparison"]
    rounds = max((e["rounds"] for step in table["steps"].values() for e in step.values()),
                 default=0)
    scenario = (data.get("scenario") or {}).get("name", "")
    model = (data.get("model") or {}).get("name", "")
    failed = list(data.get("failures") or {})
    not_run = f"; did not run: {', '.join(failed)}" if failed else ""
    return (f"Benchmark {data.get('name', '')}: {scenario}, {model}\n"
            f"median over {rounds} round{'s' if rounds != 1 else ''}, bars: min-max{not_run}")


def _targets_in_order(table: dict[str, Any]) -> list[str]:
    """The baseline first, then the others in the order they appear."""
    seen = list(dict.fromkeys(t for step in table["steps"].values() for t in step))
    base = table["baseline"]
    return ([base] if base in seen else []) + [t for t in seen if t != base]


def _series(steps: dict[str, Any], labels: list[str], target: str,
            key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max of ``key`` for ``target`` at each label (NaN where missing)."""
    values = []
    for label in labels:
        spread = (steps[label].get(target) or {}).get(key)
        values.append((spread["median"], spread["min"], spread["max"]) if spread
                      else (np.nan, np.nan, np.nan))
    table = np.asarray(values, dtype=float).reshape(-1, 3)
    return table[:, 0], table[:, 1], table[:, 2]


def _dodged(xs: list[float], index: int, count: int, log_x: bool) -> list[float]:
    """``xs`` shifted a little per target, so that the error bars do not hide each other."""
    offset = index - (count - 1) / 2
    if log_x:
        return [x * 2 ** (0.04 * offset) for x in xs]
    gaps = [b - a for a, b in zip(sorted(xs), sorted(xs)[1:]) if b > a]
    step = (min(gaps) if gaps else 1.0) * 0.025
    return [x + step * offset for x in xs]


def _load_axis_label(data: dict[str, Any], labels: list[str]) -> str:
    mode = ((data.get("scenario") or {}).get("load") or {}).get("mode")
    if mode is None and labels:
        mode = "rate" if labels[0].startswith("r=") else "concurrency"
    return "arrival rate (requests/s)" if mode == "rate" else "concurrency (users)"
