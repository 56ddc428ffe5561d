"""``make gpu-smoke`` without a GPU: it stops at once, says why, exits 2, touches nothing.

The GPU path itself (setup, serving, tests, benchmark) needs an NVIDIA GPU; here only its
pure parts are checked: the report, JUnit counts, the serving environment, the budget.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from serving.tools import gpu_smoke

REPO = Path(__file__).resolve().parents[4]


def test_without_nvidia_smi_it_stops_at_once_with_exit_2(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    assert gpu_smoke.main(["--out", str(out)], which=lambda name: None) == gpu_smoke.NO_GPU_EXIT == 2
    err = capsys.readouterr().err
    assert "[gpu-smoke] no NVIDIA GPU: nvidia-smi not found" in err and "nothing was installed or run" in err
    assert not out.exists()  # no setup, no report


def test_the_script_entry_with_nvidia_smi_absent_from_path(tmp_path: Path) -> None:
    """As `make gpu-smoke` runs it: the system python, a PATH without nvidia-smi."""
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no nvidia-smi, no make
    result = subprocess.run(
        [sys.executable, "-m", "serving.tools.gpu_smoke", "--out", str(tmp_path / "r")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no NVIDIA GPU" in result.stderr and not (tmp_path / "r").exists()


def test_a_failing_nvidia_smi_is_no_gpu_either(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    fake.chmod(0o755)
    gpus, reason = gpu_smoke.detect_gpus(lambda name: str(fake))
    assert gpus == [] and "exited 9" in reason and "could not communicate" in reason


def test_a_listed_gpu_is_detected(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA L4 (UUID: GPU-1)'\n")
    fake.chmod(0o755)
    assert gpu_smoke.detect_gpus(lambda name: str(fake)) == (["GPU 0: NVIDIA L4 (UUID: GPU-1)"], "")


def test_step_timeouts_fit_the_budget() -> None:
    assert sum(gpu_smoke.TIMEOUTS_S.values()) < gpu_smoke.BUDGET_S == 15 * 60


def test_a_step_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    step = gpu_smoke.StepResult("slow", ["sh", "-c", "sleep 60 & sleep 60"], timeout_s=0.5)
    gpu_smoke.run_step(step, tmp_path, dict(os.environ))
    assert step.status == "timeout" and step.seconds < 30 and Path(step.log).is_file()


def test_serving_steps_run_on_cuda_with_graphs_and_the_model(tmp_path: Path) -> None:
    env = gpu_smoke.gpu_env("/models/m", memory_fraction="0.45")
    assert env["SERVING_MODEL__ENGINE__DEVICE"] == "cuda" and env["SERVING_MODEL__ENGINE__ENFORCE_EAGER"] == "false"
    assert env["SERVING_MODEL__PATH"] == "/models/m" and env["SERVING_MODEL__ENGINE__GPU_MEMORY_UTILIZATION"] == "0.45"


def test_junit_counts_and_the_report(tmp_path: Path) -> None:
    junit = tmp_path / "c.xml"
    junit.write_text('<testsuites><testsuite tests="9" failures="1" errors="0" skipped="2"/></testsuites>')
    counts = gpu_smoke.junit_counts(junit)
    assert counts == {"tests": 9, "failures": 1, "errors": 0, "skipped": 2, "passed": 6}
    assert gpu_smoke.junit_counts(tmp_path / "missing.xml") == {}
    step = gpu_smoke.StepResult("conformance", ["pytest"], status="failed", returncode=1, seconds=3.0, timeout_s=180, tests=counts)
    report = {"started": "t", "gpus": ["GPU 0: X"], "model": "/m", "budget_s": 900, "seconds_after_setup": 3.0,
              "passed": False, "steps": [gpu_smoke.asdict(step)], "benchmark": None, "benchmark_markdown": "| a |"}  # fmt: skip
    json_path, md_path = gpu_smoke.write_report(tmp_path / "out", report)
    assert json_path.name == "gpu-smoke-report.json" and md_path.name == "gpu-smoke-report.md"
    text = md_path.read_text()
    assert text.startswith("# GPU smoke: FAILED") and "| conformance | failed | 3.0 | 180 | failures 1" in text
    assert "## Benchmark" in text


def test_the_files_the_smoke_runs_exist() -> None:
    for path in ("tests/integration/api/test_openai_client.py", "tests/gpu/test_reference_agreement.py",
                 "loadtests/benchmark/gpu.yaml"):  # fmt: skip
        assert (REPO / path).is_file(), path


def test_the_gpu_benchmark_has_no_cpu_only_settings() -> None:
    from loadtests.benchmark.config import load_benchmark

    config = load_benchmark(REPO / "loadtests/benchmark/gpu.yaml")
    assert [t.name for t in config.targets] == ["vllm", "stack"] and config.baseline_name() == "vllm"
    for target in config.targets:
        text = " ".join(target.command) + " " + " ".join(f"{k}={v}" for k, v in target.env.items())
        assert "VLLM_CPU" not in text and "KV_CACHE_GIB" not in text and "--enforce-eager" not in text
        assert "bfloat16" in text or target.name == "stack"
    assert config.targets[1].env["SERVING_MODEL__ENGINE__DEVICE"] == "cuda"
