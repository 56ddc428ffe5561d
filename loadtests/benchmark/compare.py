"""The comparison table: each target's numbers across rounds (median and spread) and ratios.

Every round runs every target once, so each metric has one value per (target, round,
step). The table shows the median over rounds with the min-max spread, and the ratio
of each target's median to the baseline's median (for latencies > 1 is slower, for
throughputs > 1 is more). A result is only as good as its spread: when the ranges of
two targets overlap, the difference is within this machine's noise.
"""

from __future__ import annotations

import re
from statistics import median
from typing import Any

from loadtests.benchmark.cpu import ROLE_ORDER, per_thousand_tokens

# (key, heading, kind): kind "latency" (lower is better) or "throughput" (higher is better)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ttft_p50", "TTFT p50 ms", "latency"),
    ("ttft_p99", "TTFT p99 ms", "latency"),
    ("ttft_first_p50", "TTFT p50 first wave ms", "latency"),
    ("ttft_joined_p50", "TTFT p50 joined ms", "latency"),
    ("itl_p50", "ITL p50 ms", "latency"),
    ("itl_p99", "ITL p99 ms", "latency"),
    ("tpot_p50", "TPOT p50 ms", "latency"),
    ("output_tps", "output tok/s", "throughput"),
    ("goodput", "goodput req/s", "throughput"),
    ("request_tps", "req/s", "throughput"),
)


def step_numbers(step: dict[str, Any]) -> dict[str, float | None]:
    """The compared numbers of one step of one run (summary.json step)."""
    m = step["metrics"]

    def pct(metric: str, key: str) -> float | None:
        return (m.get(metric) or {}).get(key)

    return {
        "ttft_p50": pct("ttft_ms", "p50"), "ttft_p99": pct("ttft_ms", "p99"),
        "ttft_first_p50": pct("ttft_first_wave_ms", "p50"), "ttft_joined_p50": pct("ttft_joined_ms", "p50"),
        "itl_p50": pct("itl_ms", "p50"), "itl_p99": pct("itl_ms", "p99"),
        "tpot_p50": pct("tpot_ms", "p50"),
        "output_tps": step["output_token_throughput"], "goodput": step["goodput"],
        "request_tps": step["request_throughput"],
        "failed": step["requests"]["failed"], "total": step["requests"]["total"],
        "bursty": step["buffering"]["bursty"], "eligible": step["buffering"]["eligible"],
    }


def spread(values: list[float | None]) -> dict[str, float] | None:
    """median, min and max of the non-missing values."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": median(present), "min": min(present), "max": max(present),
            "n": len(present)}


def compare(runs: dict[str, list[dict[str, Any]]], baseline: str) -> dict[str, Any]:
    """Aggregate per target and step over rounds, with ratios to ``baseline``.

    ``runs`` maps a target name to the summary dicts of its successful rounds.
    """
    labels: list[str] = []
    loads: dict[str, float | None] = {}
    for summaries in runs.values():
        for summary in summaries:
            for step in summary["steps"]:
                if step["label"] not in labels:
                    labels.append(step["label"])
                    loads[step["label"]] = step.get("value")
    table: dict[str, dict[str, Any]] = {}
    for label in labels:
        per_target: dict[str, Any] = {}
        for target, summaries in runs.items():
            rows = [step_numbers(s) for summary in summaries for s in summary["steps"]
                    if s["label"] == label]
            if not rows:
                continue
            entry = {key: spread([r[key] for r in rows]) for key, _, _ in COLUMNS}
            entry["rounds"] = len(rows)
            entry["failed"] = sum(r["failed"] for r in rows)
            entry["requests"] = sum(r["total"] for r in rows)
            entry["bursty"] = sum(r["bursty"] for r in rows)
            entry["eligible"] = sum(r["eligible"] for r in rows)
            entry["cpu"] = cpu_spread([s for summary in summaries for s in summary["steps"]
                                       if s["label"] == label])
            per_target[target] = entry
        base = per_target.get(baseline)
        for target, entry in per_target.items():
            entry["ratio"] = {key: _ratio(entry[key], base[key] if base else None)
                              for key, _, _ in COLUMNS}
        table[label] = per_target
    holding = {target: [s["highest_holding"] for s in summaries]
               for target, summaries in runs.items()}
    return {"baseline": baseline, "steps": table, "highest_holding": holding, "loads": loads}


def cpu_spread(steps: list[dict[str, Any]]) -> dict[str, dict[str, float]] | None:
    """Server CPU ms per 1,000 output tokens by role (and ``cores``: CPU s per s), over rounds."""
    per_round = []
    for step in steps:
        per = per_thousand_tokens(step)
        if per is None:
            continue
        per["cores"] = sum(step["server"]["cpu_s"].values()) / max(step["duration_s"], 1e-9)
        per_round.append(per)
    if not per_round:
        return None
    keys = [k for k in (*ROLE_ORDER, "total", "cores") if any(k in per for per in per_round)]
    return {key: spread([per.get(key, 0.0) for per in per_round]) for key in keys}


_LOAD_LABEL = re.compile(r"^[a-z]+=([0-9.]+)")


def step_loads(comparison: dict[str, Any]) -> dict[str, float | None]:
    """Each step's load value (users or arrivals/s), by label.

    From ``loads`` where the comparison has it, else read from the label (``c=16``,
    ``r=2.5/s``): comparisons written before ``loads`` existed have only labels.
    """
    known = comparison.get("loads") or {}
    values: dict[str, float | None] = {}
    for label in comparison["steps"]:
        value = known.get(label)
        if value is None:
            match = _LOAD_LABEL.match(label)
            value = float(match.group(1)) if match else None
        values[label] = value
    return values


def _ratio(value: dict | None, base: dict | None) -> float | None:
    if not value or not base or not base["median"]:
        return None
    return value["median"] / base["median"]


def markdown(comparison: dict[str, Any], *, title: str, context: list[str],
             failures: dict[str, str], image: str | None = None) -> str:
    """The comparison as Markdown: per step, values with spread, then ratios.

    ``image``: a plot file next to the Markdown, shown after the context.
    """
    baseline = comparison["baseline"]
    lines = [f"# {title}", ""] + context + [""]
    if image:
        lines += [f"![TTFT and output tokens/s vs load]({image})", ""]
    if failures:
        lines += ["## Targets that did not run", ""]
        lines += [f"- **{name}**: {reason}" for name, reason in failures.items()] + [""]
    for label, per_target in comparison["steps"].items():
        lines += [f"## Load {label}", "",
                  "Median over rounds, [min - max] below; errors = failed/total requests.", "",
                  "| target | rounds | " + " | ".join(h for _, h, _ in COLUMNS)
                  + " | errors | bursty streams |",
                  "|---|---:|" + "---:|" * len(COLUMNS) + "---:|---:|"]
        for target, entry in per_target.items():
            cells = [_cell(entry[key]) for key, _, _ in COLUMNS]
            lines.append(f"| {target} | {entry['rounds']} | " + " | ".join(cells)
                         + f" | {entry['failed']}/{entry['requests']} | "
                         f"{entry['bursty']}/{entry['eligible']} |")
        lines += ["", f"Ratio to {baseline} (median / median; latency > 1 is slower, "
                  "throughput > 1 is more):", "",
                  "| target | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
                  "|---|" + "---:|" * len(COLUMNS)]
        for target, entry in per_target.items():
            ratios = [_x(entry["ratio"][key]) for key, _, _ in COLUMNS]
            lines.append(f"| {target} | " + " | ".join(ratios) + " |")
        lines.append("")
        lines += _cpu_lines(per_target)
    holding = comparison["highest_holding"]
    if holding:
        lines += ["## Highest load within the SLO, per round", ""]
        lines += [f"- {target}: {', '.join(_hold(v) for v in values)}"
                  for target, values in holding.items()]
    return "\n".join(lines) + "\n"


def _cpu_lines(per_target: dict[str, Any]) -> list[str]:
    """The step's table of server CPU per 1,000 output tokens by process role (if measured)."""
    measured = {t: e["cpu"] for t, e in per_target.items() if e.get("cpu")}
    if not measured:
        return []
    roles = [r for r in (*ROLE_ORDER, "total") if any(r in cpu for cpu in measured.values())]
    lines = ["Server CPU ms per 1,000 output tokens by process role (median over rounds; "
             "cores = CPU seconds per second, of 2 here):", "",
             "| target | " + " | ".join(r.replace("_", " ") for r in roles) + " | cores |",
             "|---|" + "---:|" * (len(roles) + 1)]
    for target, cpu in measured.items():
        cells = [_fmt(cpu[r]["median"]) if r in cpu else "-" for r in roles]
        cores = cpu.get("cores")
        lines.append(f"| {target} | " + " | ".join(cells)
                     + f" | {_fmt(cores['median']) if cores else '-'} |")
    return lines + [""]


def _cell(s: dict[str, float] | None) -> str:
    if not s:
        return "-"
    if s["n"] == 1:
        return _fmt(s["median"])
    return f"{_fmt(s['median'])} [{_fmt(s['min'])} - {_fmt(s['max'])}]"


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _hold(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"
