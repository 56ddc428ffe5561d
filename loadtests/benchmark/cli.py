"""``serving-loadtest benchmark`` (the side-by-side benchmark) and ``benchmark-plot`` (its plot again)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from loadtests.benchmark.config import load_benchmark
from loadtests.benchmark.runner import main_log, redraw_comparison, run_benchmark
from loadtests.progress import Progress


def run_benchmark_command(args: argparse.Namespace) -> int:
    """Run the benchmark the flags describe and print where the comparison is."""
    overrides = {"repeats": args.repeats, "model": args.model, "scenario": args.scenario}
    config = load_benchmark(getattr(args, "config_flag", None) or args.config, overrides)
    names = [n.strip() for n in args.targets.split(",")] if args.targets else None
    try:
        config = config.select(names)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load = {"max_requests": args.max_requests, "concurrency": args.concurrency}
    load = {k: v for k, v in load.items() if v is not None}
    if args.concurrency:
        load["mode"] = "concurrency"
    out = args.out or Path("loadtest-results") / (
        f"benchmark-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")
    path = run_benchmark(config, out, scenario_overrides={"load": load} if load else None,
                         progress=Progress(enabled=not args.quiet), log=main_log)
    print(f"comparison: {path}")
    return 0


def plot_benchmark_command(args: argparse.Namespace) -> int:
    """Draw comparison.png again from an existing comparison.json and print its path."""
    print(f"plot: {redraw_comparison(args.folder)}")
    return 0
