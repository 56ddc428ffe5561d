"""``make gpu-smoke``: the GPU build checked end to end on a machine with an NVIDIA GPU.

Steps, each with its own timeout, in one report (``gpu-smoke-report.json`` + ``.md``):

1. ``gpu``: ``nvidia-smi -L`` must exit 0; without a GPU the smoke stops at once (exit 2)
   before installing anything.
2. ``setup``: ``make setup ENGINE=gpu`` (``.venv-gpu`` from ``requirements/gpu.lock``; a no-op
   once its stamp exists). Outside the budget: the first install downloads ~4 GB of wheels.
3. ``model``: the folder of ``--model``, or the packaged SmolLM2 (``python -m serving.model.prepare``).
4. ``conformance``: ``tests/integration/api/test_openai_client.py`` (the official ``openai``
   client) against the stack on CUDA, serving that folder.
5. ``reference``: ``tests/gpu/test_reference_agreement.py``: greedy answers of the CUDA
   default precision (bfloat16) close to transformers float32 from the same folder.
6. ``benchmark``: ``serving-loadtest benchmark --config loadtests/benchmark/gpu.yaml``:
   this stack against vLLM's own OpenAI server on the same GPU and folder.

Steps 3-6 share a budget of ``BUDGET_S`` (15 min on one GPU): the step timeouts add up to
less, and a step gets at most what is left. A step that fails does not stop the later
ones unless they need it (no model: nothing to serve). Standard library only: it runs
before the GPU venv exists.

    python -m serving.tools.gpu_smoke [--model DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-gpu"
BUDGET_S = 15 * 60
NO_GPU_EXIT = 2
REPORT = "gpu-smoke-report"
SETUP_TIMEOUT_S = 45 * 60
# Step timeouts after setup (seconds); 90 + 180 + 180 + 360 = 810 < BUDGET_S.
TIMEOUTS_S = {"model": 90, "conformance": 180, "reference": 180, "benchmark": 360}


@dataclass
class StepResult:
    """What one step did: its command, outcome, time and where its output is."""

    name: str
    command: list[str]
    status: str = "skipped"  # passed | failed | timeout | skipped
    returncode: int | None = None
    seconds: float = 0.0
    timeout_s: float = 0.0
    log: str | None = None
    detail: str = ""
    tests: dict[str, int] = field(default_factory=dict)


def detect_gpus(which: Callable[[str], str | None] = shutil.which) -> tuple[list[str], str]:
    """The ``nvidia-smi -L`` lines, or no lines and the reason there is no usable GPU."""
    binary = which("nvidia-smi")
    if binary is None:
        return [], "nvidia-smi not found (no NVIDIA driver on this machine)"
    try:
        result = subprocess.run([binary, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi -L did not run: {exc}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        return [], f"nvidia-smi -L exited {result.returncode}: {(result.stderr or result.stdout).strip()[:300]}"
    return lines, ""


def run_step(step: StepResult, logs: Path, env: dict[str, str]) -> StepResult:
    """Run ``step.command`` in its own session, output to a log, killed at its timeout."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{step.name}.log"
    step.log = str(log)
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            step.command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            step.returncode = process.wait(timeout=step.timeout_s)
            step.status = "passed" if step.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            _stop(process)
            step.status, step.detail = "timeout", f"killed after {step.timeout_s:.0f}s"
    step.seconds = round(time.monotonic() - started, 1)
    return step


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the step's own process group (servers drain), SIGKILL 30 s later."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def junit_counts(path: Path) -> dict[str, int]:
    """passed/failed/skipped of a pytest JUnit XML file (empty when it is missing)."""
    if not path.is_file():
        return {}
    suites = ET.parse(path).getroot()
    suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
    if suite is None:
        return {}
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def gpu_env(model: str, *, memory_fraction: str) -> dict[str, str]:
    """The environment of the steps that serve: CUDA, the device defaults, the model folder."""
    env = dict(os.environ)
    env.update(
        SERVING_MODEL__ENGINE__DEVICE="cuda",
        # deploy/serve/serve_config.yaml's explicit `enforce_eager: true` is for CPU.
        SERVING_MODEL__ENGINE__ENFORCE_EAGER="false",
        # Two engines may overlap while a test redeploys the app.
        SERVING_MODEL__ENGINE__GPU_MEMORY_UTILIZATION=memory_fraction,
        SERVING_MODEL__PATH=model,
        HF_HUB_OFFLINE="1",
    )
    return env


def pytest_step(name: str, test_file: str, out: Path) -> StepResult:
    python = str(VENV / "bin" / "python")
    junit = out / f"{name}.xml"
    command = [python, "-m", "pytest", test_file, "-q", "-p", "no:randomly", f"--junitxml={junit}"]
    return StepResult(name, command, timeout_s=TIMEOUTS_S[name])


def write_report(out: Path, report: dict) -> tuple[Path, Path]:
    """``gpu-smoke-report.json`` and ``.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{REPORT}.json", out / f"{REPORT}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def markdown(report: dict) -> str:
    """The report for a person: verdict, GPUs, one row per step, the benchmark table."""
    lines = [
        f"# GPU smoke: {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        f"- started {report['started']}, model `{report['model']}`",
        f"- GPUs: {'; '.join(report['gpus'])}",
        f"- budget after setup: {report['budget_s']} s, used {report['seconds_after_setup']} s",
        "",
        "| step | status | seconds | timeout | tests | detail |",
        "|---|---|---|---|---|---|",
    ]
    for step in report["steps"]:
        tests = ", ".join(f"{k} {v}" for k, v in step["tests"].items() if k != "tests")
        lines.append(
            f"| {step['name']} | {step['status']} | {step['seconds']} | {step['timeout_s']:.0f} | {tests} | {step['detail']} |"
        )
    if report.get("benchmark_markdown"):
        lines += ["", "## Benchmark (loadtests/benchmark/gpu.yaml)", "", report["benchmark_markdown"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, which: Callable[[str], str | None] = shutil.which) -> int:
    """Run the smoke; 0 all passed, 1 a step failed, 2 no NVIDIA GPU (nothing was done)."""
    parser = argparse.ArgumentParser(prog="python -m serving.tools.gpu_smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a Hugging Face model folder (default: the packaged SmolLM2)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu-smoke", help="report folder")
    args = parser.parse_args(argv)
    gpus, reason = detect_gpus(which)
    if not gpus:
        print(f"[gpu-smoke] no NVIDIA GPU: {reason}. The GPU smoke runs only on a machine where "
              "`nvidia-smi -L` lists a GPU; nothing was installed or run.", file=sys.stderr)  # fmt: skip
        return NO_GPU_EXIT
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out, logs = args.out, args.out / "logs"
    python = str(VENV / "bin" / "python")
    steps: list[StepResult] = []
    setup = StepResult("setup", ["make", "setup", "ENGINE=gpu"], timeout_s=SETUP_TIMEOUT_S)
    steps.append(run_step(setup, logs, dict(os.environ)))
    budget_start = time.monotonic()
    model = str(args.model.resolve()) if args.model else ""
    prepare = StepResult("model", [python, "-m", "serving.model.prepare"], timeout_s=TIMEOUTS_S["model"])
    if args.model:
        prepare.command, prepare.status = [], "passed" if (args.model / "config.json").is_file() else "failed"
        prepare.detail = f"given: {model}" + ("" if prepare.status == "passed" else " (no config.json)")
    elif setup.status == "passed":
        run_step(prepare, logs, dict(os.environ, HF_HUB_OFFLINE="1"))
        if prepare.status == "passed":
            model = Path(prepare.log).read_text().strip().splitlines()[-1]
            prepare.detail = model
    steps.append(prepare)
    serving = [
        pytest_step("conformance", "tests/integration/api/test_openai_client.py", out),
        pytest_step("reference", "tests/gpu/test_reference_agreement.py", out),
        StepResult(
            "benchmark",
            [str(VENV / "bin" / "serving-loadtest"), "benchmark", "--config", "loadtests/benchmark/gpu.yaml",
             "--model", model, "--out", str(out / "benchmark"), "--quiet"],
            timeout_s=TIMEOUTS_S["benchmark"],
        ),
    ]  # fmt: skip
    for step in serving:
        left = BUDGET_S - (time.monotonic() - budget_start)
        if setup.status != "passed" or prepare.status != "passed":
            step.detail = "no GPU venv" if setup.status != "passed" else "no model to serve"
        elif left < 30:
            step.detail = "budget used up"
        else:
            step.timeout_s = min(step.timeout_s, left)
            run_step(step, logs, gpu_env(model, memory_fraction="0.8" if step.name == "benchmark" else "0.45"))
            step.tests = junit_counts(out / f"{step.name}.xml")
        steps.append(step)
    comparison = out / "benchmark" / "comparison.md"
    report = {
        "started": started,
        "gpus": gpus,
        "model": model,
        "budget_s": BUDGET_S,
        "seconds_after_setup": round(time.monotonic() - budget_start, 1),
        "passed": all(s.status == "passed" for s in steps),
        "steps": [asdict(s) for s in steps],
        "benchmark": json.loads((out / "benchmark" / "comparison.json").read_text())
        if (out / "benchmark" / "comparison.json").is_file()
        else None,
        "benchmark_markdown": comparison.read_text() if comparison.is_file() else "",
    }
    json_path, md_path = write_report(out, report)
    print(f"[gpu-smoke] {'passed' if report['passed'] else 'FAILED'}: {json_path} {md_path}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
