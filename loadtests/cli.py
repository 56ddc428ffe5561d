"""``serving-loadtest``: run a scenario, re-render a report, list scenarios, run the benchmark.

Examples::

    serving-loadtest run chat_sweep                       # the packaged sweep, 127.0.0.1:8000
    serving-loadtest run short_chat --concurrency 1,4,16 --max-requests 50
    serving-loadtest run multi_turn --url http://127.0.0.1:18000/v1 --out results/mt
    serving-loadtest run short_chat --mode rate --rates 1,2,4 --duration 30
    serving-loadtest report loadtest-results/chat_sweep-20260101T000000Z
    serving-loadtest benchmark loadtests/benchmark/compare.yaml --targets vllm,stack
    serving-loadtest benchmark-plot loadtests/results/2026-11-21-overhead

Traffic goes to loopback only, unless ``--url`` names another host *and*
``--allow-remote`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from pydantic import ValidationError

from loadtests.config import SCENARIO_DIR, load_scenario
from loadtests.safety import RemoteTargetRefused

EXIT_USAGE = 2


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="serving-loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario and write a report")
    run.add_argument("scenario", help="a packaged scenario name or a YAML path")
    _target_args(run)
    run.add_argument("--workload", help="workload name or path (overrides the scenario)")
    run.add_argument("--mode", choices=("concurrency", "rate"))
    run.add_argument("--concurrency", type=_ints, help="users per step, e.g. 1,2,4,8")
    run.add_argument("--rates", type=_floats, help="arrivals/s per step, e.g. 0.5,1,2")
    run.add_argument("--max-requests", type=int, help="most requests per step")
    run.add_argument("--duration", type=float, help="longest a step issues requests (s)")
    run.add_argument("--ramp-up", type=float, help="ramp-up time per step (s)")
    run.add_argument("--max-tokens", type=int, help="override the workload's max_tokens")
    run.add_argument("--warmup", type=int, help="unmeasured requests before the first step")
    run.add_argument("--slo-ttft-ms", type=float)
    run.add_argument("--slo-itl-ms", type=float)
    run.add_argument("--seed", type=int)
    run.add_argument("--out", type=Path, help="output folder (default loadtest-results/NAME-TIME)")
    run.add_argument("--metrics-port", type=int, help="serve client metrics on 127.0.0.1:PORT")
    run.add_argument("--quiet", action="store_true", help="no live progress")

    report = sub.add_parser("report", help="re-render report.md and plots of a result folder")
    report.add_argument("folder", type=Path)

    sub.add_parser("list", help="list the packaged scenarios")

    bench = sub.add_parser("benchmark", help="compare vLLM, Ray Serve LLM and this stack")
    bench.add_argument("config", nargs="?", help="benchmark YAML (default: the packaged one)")
    bench.add_argument("--config", dest="config_flag", help="the same, as an option")
    bench.add_argument("--targets", help="comma-separated subset of the config's targets")
    bench.add_argument("--scenario", help="scenario to run against every target")
    bench.add_argument("--repeats", type=int, help="rounds; each round runs every target once")
    bench.add_argument("--max-requests", type=int, help="override the scenario's max_requests")
    bench.add_argument("--concurrency", type=_ints, help="override the scenario's user counts")
    bench.add_argument("--model", help="model folder (default: the prepared default model)")
    bench.add_argument("--out", type=Path, help="output folder")
    bench.add_argument("--quiet", action="store_true")

    bench_plot = sub.add_parser("benchmark-plot",
                                help="re-draw comparison.png of a benchmark result folder")
    bench_plot.add_argument("folder", type=Path, help="the folder (or its comparison.json)")
    return parser


def _target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="target base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --url whose host is not loopback")
    parser.add_argument("--model", help="model id to send (default: the first of GET /models)")
    parser.add_argument("--api-key-env", help="environment variable holding the API key")


def scenario_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The nested scenario overrides the ``run`` flags ask for."""
    target = {"base_url": args.url, "model": args.model, "api_key_env": args.api_key_env}
    workload = {"name": args.workload, "max_tokens": args.max_tokens}
    load = {"mode": args.mode, "concurrency": args.concurrency, "rates": args.rates,
            "max_requests": args.max_requests, "duration_s": args.duration,
            "ramp_up_s": args.ramp_up, "warmup_requests": args.warmup}
    slo = {"ttft_ms": args.slo_ttft_ms, "itl_ms": args.slo_itl_ms}
    out: dict[str, Any] = {}
    for key, section in (("target", target), ("workload", workload), ("load", load), ("slo", slo)):
        given = {k: v for k, v in section.items() if v is not None}
        if given:
            out[key] = given
    if args.seed is not None:
        out["seed"] = args.seed
    if not args.mode and bool(args.rates) != bool(args.concurrency):  # the flag picks the shape
        out.setdefault("load", {})["mode"] = "rate" if args.rates else "concurrency"
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario, write its results and print the headline."""
    from loadtests.progress import ClientMetrics, Progress
    from loadtests.report import headline, write_results
    from loadtests.runner import TargetUnreachable, run_scenario

    if args.allow_remote and not args.url:
        print("--allow-remote applies only to a URL given with --url", file=sys.stderr)
        return EXIT_USAGE
    scenario = load_scenario(args.scenario, scenario_overrides(args),
                             allow_remote=bool(args.allow_remote and args.url))
    metrics = ClientMetrics(args.metrics_port) if args.metrics_port else None
    progress = Progress(enabled=not args.quiet, metrics=metrics)
    print(f"load test {scenario.name!r} -> {scenario.target.base_url}", file=sys.stderr)
    try:
        run = asyncio.run(run_scenario(scenario, progress=progress))
    except TargetUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if metrics:
            metrics.close()
    out = args.out or default_out_dir(scenario.name)
    report = write_results(run, out)
    print(headline(run.summary()))
    for step in run.steps:
        for warning in step.data["warnings"]:
            print(f"warning [{step.data['label']}]: {warning}", file=sys.stderr)
    print(f"report: {report}")
    return 0


def default_out_dir(name: str) -> Path:
    """``loadtest-results/NAME-YYYYmmddTHHMMSSZ`` under the current directory."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("loadtest-results") / f"{name}-{stamp}"


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render a result folder's report and plots."""
    from loadtests.report import render_report

    print(render_report(args.folder))
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    """Print the packaged scenarios with their descriptions."""
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        scenario = load_scenario(path)
        print(f"{path.stem:<20} {scenario.description}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run the side-by-side benchmark."""
    from loadtests.benchmark.cli import run_benchmark_command

    return run_benchmark_command(args)


def cmd_benchmark_plot(args: argparse.Namespace) -> int:
    """Re-draw a benchmark's comparison plot from its comparison.json."""
    from loadtests.benchmark.cli import plot_benchmark_command

    return plot_benchmark_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``serving-loadtest``."""
    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "report": cmd_report, "list": cmd_list,
                "benchmark": cmd_benchmark, "benchmark-plot": cmd_benchmark_plot}
    try:
        return commands[args.command](args)
    except (RemoteTargetRefused, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"error: invalid scenario:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
