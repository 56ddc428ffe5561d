"""Runs the side-by-side benchmark: each round starts, measures and stops every target in turn.

Targets never run at the same time (a 2-core machine). Rounds interleave the targets
(round r starts with target r mod n) so that slow drifts in the machine's load hit
every target alike; the comparison reports the spread over rounds. A target that
fails to start is reported with the reason and skipped in later rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loadtests.benchmark import compare as comparison
from loadtests.benchmark.cpu import step_meter
from loadtests.benchmark.config import BenchmarkConfig, TargetSpec
from loadtests.benchmark.process import (
    TargetFailed,
    make_tmp_dir,
    python,
    start_target,
    stop_target,
    target_pids,
    wait_generating,
    wait_ready,
)
from loadtests.config import Scenario, deep_merge, load_scenario
from loadtests.machine import describe_machine
from loadtests.progress import Progress
from loadtests.report import slo_text, write_results
from loadtests.runner import TargetUnreachable, run_scenario

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"


@dataclass
class TargetRound:
    """One start-measure-stop of one target."""

    target: str
    round: int
    ready_s: float | None = None
    load_average: float | None = None  # 1-minute load average when the target started
    result_dir: str | None = None
    error: str | None = None
    summary: dict[str, Any] | None = field(default=None, repr=False)


def resolve_model(config: BenchmarkConfig) -> Path:
    """The model folder: the configured one, or the project's prepared default model."""
    if config.model is not None:
        return config.model.expanduser()
    done = subprocess.run([python(), "-m", "serving.model.prepare"], capture_output=True,
                          text=True, timeout=900)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError("`python -m serving.model.prepare` failed; set `model:` in the "
                           f"benchmark file. Output:\n{done.stderr[-2000:]}")
    return Path(lines[-1].strip())


def round_order(targets: list[TargetSpec], round_index: int, rotate: bool) -> list[TargetSpec]:
    """The targets in the order of one round (rotated by the round number)."""
    if not rotate or not targets:
        return list(targets)
    shift = round_index % len(targets)
    return targets[shift:] + targets[:shift]


def run_benchmark(config: BenchmarkConfig, out_dir: Path, *,
                  scenario_overrides: dict[str, Any] | None = None,
                  progress: Progress | None = None, log=print) -> Path:
    """Run every round and write the comparison; returns the comparison's Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = resolve_model(config)
    scenario = load_scenario(config.scenario,
                             deep_merge(config.overrides, scenario_overrides or {}))
    machine = describe_machine()
    rounds: list[TargetRound] = []
    failures: dict[str, str] = {}
    for index in range(config.repeats):
        for target in round_order(config.targets, index, config.rotate):
            if target.name in failures:
                continue
            log(f"round {index + 1}/{config.repeats}: {target.name}")
            record = run_target_once(config, target, index, scenario, model, out_dir,
                                     progress=progress, log=log)
            rounds.append(record)
            if record.error:
                failures[target.name] = record.error
    return write_comparison(config, scenario, model, machine, rounds, failures, out_dir)


def run_target_once(config: BenchmarkConfig, target: TargetSpec, index: int,
                    scenario: Scenario, model: Path, out_dir: Path, *,
                    progress: Progress | None, log=print) -> TargetRound:
    """Start ``target``, wait for it, run the scenario against it, stop it."""
    record = TargetRound(target.name, index, load_average=os.getloadavg()[0])
    tmp = make_tmp_dir(target.name)
    values = {"python": python(), "model": str(model), "model_name": config.model_name,
              "port": str(target.port), "tmp": str(tmp)}
    command, env, ready_url = target.render(values)
    run_dir = out_dir / target.name / f"round-{index + 1}"
    process = start_target(target.name, command, env, run_dir / "server.log", tmp)
    try:
        wait_ready(process, ready_url, config.ready_timeout_s)
        record.ready_s = wait_generating(process, target.base_url(), config.model_name,
                                         config.ready_timeout_s)
        log(f"  {target.name} ready (first generation) in {record.ready_s:.1f}s")
        scenario_here = scenario.model_copy(update={"target": scenario.target.model_copy(
            update={"base_url": target.base_url(), "model": config.model_name})})
        meter = step_meter(lambda: target_pids(process), process.pid)
        run = asyncio.run(run_scenario(scenario_here, progress=progress, step_probe=meter))
        write_results(run, run_dir)
        record.summary = run.summary()
        record.result_dir = str(run_dir.relative_to(out_dir))
    except (TargetFailed, TargetUnreachable) as exc:
        record.error = first_error_line(str(exc))
        log(f"  {target.name} failed: {record.error}")
    finally:
        try:
            code = stop_target(process, config.stop_timeout_s)
            log(f"  {target.name} stopped (exit code {code})")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(config.settle_s)
    return record


def first_error_line(text: str) -> str:
    """The message and the last exception line of a target's log tail."""
    head = text.splitlines()[0] if text else "unknown error"
    errors = [line.strip() for line in text.splitlines()
              if "Error" in line or "error:" in line.lower()]
    return head if not errors else f"{head} | last error in log: {errors[-1][:400]}"


def write_comparison(config: BenchmarkConfig, scenario: Scenario, model: Path,
                     machine: dict[str, Any], rounds: list[TargetRound],
                     failures: dict[str, str], out_dir: Path) -> Path:
    """comparison.json and comparison.md of a finished benchmark."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for record in rounds:
        if record.summary is not None:
            runs.setdefault(record.target, []).append(record.summary)
    baseline = config.baseline_name()
    if baseline not in runs and runs:
        baseline = next(iter(runs))
    table = comparison.compare(runs, baseline)
    ready = {t.name: [r.ready_s for r in rounds if r.target == t.name and r.ready_s]
             for t in config.targets}
    data = {
        "name": config.name,
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "machine": machine,
        "model": {"path": str(model), "name": config.model_name},
        "scenario": scenario.model_dump(mode="json"),
        "config": config.model_dump(mode="json"),
        "rounds": [{k: v for k, v in vars(r).items() if k != "summary"} for r in rounds],
        "failures": failures,
        "comparison": table,
        "ready_s": ready,
    }
    (out_dir / COMPARISON_JSON).write_text(json.dumps(data, indent=2, default=str) + "\n")
    image = draw_comparison(data, out_dir) if runs else None
    load = scenario.load
    context = [
        f"- Machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib')} GiB; load average at start {machine.get('load_average')}; "
        f"packages {machine.get('packages')}",
        f"- Model: `{config.model_name}` from `{model}`",
        f"- Scenario: `{scenario.name}` (workload `{scenario.workload.name}`, "
        f"{load.mode} {', '.join(f'{v:g}' for v in load.step_values())}, "
        f"<= {load.max_requests} requests / {load.duration_s:g} s per step); "
        f"SLO {slo_text(scenario.slo.model_dump())}",
        f"- Rounds: {config.repeats}, targets {'rotated' if config.rotate else 'in order'} "
        "each round, one target running at a time",
        "- Start to first generation (s): " + "; ".join(
            f"{name} {', '.join(f'{s:.0f}' for s in values) or '-'}"
            for name, values in ready.items()),
        "- 1-minute load average when each target started (noise indicator; this machine "
        "has 2 cores): " + "; ".join(
            f"{name} {', '.join(f'{r.load_average:.1f}' for r in rounds if r.target == name)}"
            for name in ready),
        f"- Targets: " + "; ".join(f"**{t.name}**: {t.description or ' '.join(t.command)}"
                                   for t in config.targets),
    ]
    path = out_dir / COMPARISON_MD
    path.write_text(comparison.markdown(table, title=f"Benchmark `{config.name}`",
                                        context=context, failures=failures,
                                        image=image.name if image else None))
    return path


def draw_comparison(data: dict[str, Any], out_dir: Path) -> Path:
    """comparison.png (TTFT p50 and output tokens/s vs load per target) from comparison.json's data."""
    from loadtests import plots  # matplotlib is imported only when drawing

    return plots.comparison_vs_load(data, out_dir / plots.COMPARISON_PNG)


def redraw_comparison(folder: Path) -> Path:
    """Draw comparison.png again from a benchmark folder's (or file's) comparison.json."""
    source = folder / COMPARISON_JSON if folder.is_dir() else folder
    data = json.loads(source.read_text())
    return draw_comparison(data, source.parent)


def main_log(message: str) -> None:
    """Benchmark progress messages go to stderr."""
    print(message, file=sys.stderr, flush=True)
