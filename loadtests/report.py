"""Writes a run's results: summary.json, steps.csv, requests.csv, report.md and the plots.

requests.csv holds one row per request with measurements only: no prompt, reply or key.
:func:`render_report` rebuilds report.md and the plots from summary.json and
requests.csv alone, so a committed result can be re-rendered later.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from loadtests.runner import RunResult

SUMMARY = "summary.json"
STEPS_CSV = "steps.csv"
REQUESTS_CSV = "requests.csv"
REPORT_MD = "report.md"
METRICS = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
PCTS = ("p50", "p90", "p95", "p99")

REQUEST_COLUMNS = (
    "step", "user", "turn", "start_s", "status", "error_kind", "ttft_ms", "e2e_ms",
    "mean_itl_ms", "tpot_ms", "prompt_tokens", "output_tokens", "tokens_from_usage", "chunks",
)


def write_results(run: RunResult, out_dir: Path) -> Path:
    """Write every output file of ``run`` into ``out_dir`` and return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = run.summary()
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    write_requests_csv(run, out_dir / REQUESTS_CSV)
    return render_report(out_dir)


def write_requests_csv(run: RunResult, path: Path) -> None:
    """One row per request, times relative to the start of its step."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(REQUEST_COLUMNS)
        for outcome in run.outcomes:
            for r in outcome.results:
                writer.writerow([
                    r.step, r.user, r.turn, _num(r.start - outcome.started), r.status,
                    r.error_kind or "", _ms(r.ttft), _ms(r.e2e), _ms(r.mean_itl), _ms(r.tpot),
                    _opt(r.prompt_tokens), _opt(r.output_tokens), int(r.tokens_from_usage),
                    len(r.chunk_times),
                ])


def render_report(out_dir: Path) -> Path:
    """(Re)write steps.csv, report.md and the PNG plots from summary.json and requests.csv."""
    from loadtests import plots  # matplotlib is imported only when drawing

    summary = json.loads((out_dir / SUMMARY).read_text())
    ttfts = read_ttfts(out_dir / REQUESTS_CSV)
    write_steps_csv(summary, out_dir / STEPS_CSV)
    images = plots.draw_all(summary, ttfts, out_dir)
    path = out_dir / REPORT_MD
    path.write_text(markdown(summary, [p.name for p in images]))
    return path


def read_ttfts(path: Path) -> dict[str, list[float]]:
    """TTFT samples (ms) of successful requests, by step label."""
    out: dict[str, list[float]] = {}
    if not path.is_file():
        return out
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["ttft_ms"] and not row["error_kind"]:
                out.setdefault(row["step"], []).append(float(row["ttft_ms"]))
    return out


def step_row(step: dict[str, Any]) -> dict[str, Any]:
    """A flat row of one step's numbers (for steps.csv)."""
    row: dict[str, Any] = {
        "step": step["label"], "value": step["value"], "duration_s": step["duration_s"],
        "requests": step["requests"]["total"], "ok": step["requests"]["ok"],
        "failed": step["requests"]["failed"], "good": step["requests"]["good"],
        "request_throughput": step["request_throughput"],
        "output_token_throughput": step["output_token_throughput"],
        "goodput": step["goodput"], "slo_attainment": step["slo"]["attainment"],
        "holds_slo": step["slo"]["holds"],
        "errors": ";".join(f"{k}={v}" for k, v in sorted(step["errors_by_kind"].items())),
    }
    for metric in METRICS:
        dist = step["metrics"].get(metric) or {}
        for key in ("mean", *PCTS):
            row[f"{metric[:-3]}_{key}_ms"] = dist.get(key)
    return row


def write_steps_csv(summary: dict[str, Any], path: Path) -> None:
    """One row per step."""
    rows = [step_row(s) for s in summary["steps"]]
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def slo_text(slo: dict[str, Any]) -> str:
    """The SLO in words, e.g. ``TTFT <= 500 ms, ITL <= 50 ms for >= 90% of requests``."""
    parts = [f"{name} <= {slo[key]:g} ms" for key, name in
             (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E"))
             if slo.get(key) is not None]
    objectives = ", ".join(parts) if parts else "no latency objective"
    return (f"{objectives} for >= {slo['min_attainment']:.0%} of requests, "
            f"<= {slo['max_error_rate']:.0%} errors")


def headline(summary: dict[str, Any]) -> str:
    """One sentence answering "how much load does it hold within the SLO?"."""
    best, unit = summary["highest_holding"], summary["load_unit"]
    slo = slo_text(summary["scenario"]["slo"])
    if best is None:
        return f"No swept load held the SLO ({slo})."
    shown = f"{int(best)} {unit}" if unit == "users" else f"{best:g} {unit}"
    return f"Highest load within the SLO: {shown} ({slo})."


def markdown(summary: dict[str, Any], images: Iterable[str] = ()) -> str:
    """The Markdown report."""
    scenario, machine = summary["scenario"], summary["machine"]
    lines = [
        f"# Load test `{scenario['name']}`",
        "",
        f"**{headline(summary)}**",
        "",
        f"- Target: `{scenario['target']['base_url']}`, model `{summary['model']}`",
        f"- Workload: `{scenario['workload']['name']}`; load: {scenario['load']['mode']} "
        f"{_sweep(scenario['load'])}; per step at most {scenario['load']['max_requests']} "
        f"requests / {scenario['load']['duration_s']:g} s",
        f"- Started: {summary['started_at']}",
        f"- Machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib')} GiB, load average at start {machine.get('load_average')}",
        "",
        "| load | requests | failed | req/s | output tok/s | goodput req/s | SLO met | "
        "TTFT p50 / p90 / p99 ms | ITL p50 / p99 ms | TPOT p50 ms | E2E p50 / p99 ms | holds |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|:-:|",
    ]
    for s in summary["steps"]:
        m = s["metrics"]
        lines.append(
            f"| {s['label']} | {s['requests']['total']} | {s['requests']['failed']} | "
            f"{s['request_throughput']:.2f} | {s['output_token_throughput']:.1f} | "
            f"{s['goodput']:.2f} | {s['slo']['attainment']:.0%} | "
            f"{_pcts(m['ttft_ms'], 'p50', 'p90', 'p99')} | {_pcts(m['itl_ms'], 'p50', 'p99')} | "
            f"{_pcts(m['tpot_ms'], 'p50')} | {_pcts(m['e2e_ms'], 'p50', 'p99')} | "
            f"{'yes' if s['slo']['holds'] else 'no'} |"
        )
    errors = [(s["label"], kind, n, s["error_samples"].get(kind, []))
              for s in summary["steps"] for kind, n in sorted(s["errors_by_kind"].items())]
    if errors:
        lines += ["", "## Errors", "", "| load | kind | count | example |", "|---|---|---:|---|"]
        for label, kind, n, samples in errors:
            example = (samples[0] if samples else "").replace("|", "\\|")
            lines.append(f"| {label} | {kind} | {n} | {example} |")
    warnings = [(s["label"], w) for s in summary["steps"] for w in s["warnings"]]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {label}: {w}" for label, w in warnings]
    images = list(images)
    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def _sweep(load: dict[str, Any]) -> str:
    values = load["concurrency"] if load["mode"] == "concurrency" else load["rates"]
    return ", ".join(f"{v:g}" for v in values)


def _pcts(dist: dict[str, float] | None, *keys: str) -> str:
    if not dist:
        return "-"
    return " / ".join(f"{dist[k]:.1f}" for k in keys)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000.0:.3f}"


def _num(value: float) -> str:
    return f"{value:.4f}"


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)
