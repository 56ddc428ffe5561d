"""Start a target server in its own process group, wait until it is ready, stop it cleanly.

Only processes this module started are ever signalled: the target's process group
(``start_new_session``), plus any descendant that left the group, identified by PID
and start time recorded while the target ran. Stopping is gentle first: SIGTERM to
the leader (so it can shut its own children down, e.g. ``ray.shutdown()``), then
SIGTERM to the group, then SIGKILL. Never ``ray stop``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class TargetFailed(RuntimeError):
    """The target exited or did not become ready in time."""


@dataclass
class TargetProcess:
    """A running target server."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    tmp_dir: Path
    started: float
    log_file: IO[bytes]
    known: dict[int, str] = field(default_factory=dict)  # descendant pid -> start time

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        """The end of the target's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_target(name: str, command: list[str], env: dict[str, str], log_path: Path,
                 tmp_dir: Path) -> TargetProcess:
    """Start ``command`` in a new session with ``env`` added, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    child_env = {**os.environ, **env}
    # the package must be importable by targets started with `python -m loadtests...`
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), child_env.get("PYTHONPATH", "")) if p)
    popen = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=child_env, cwd=PACKAGE_ROOT,
                             start_new_session=True)
    return TargetProcess(name, popen, log_path, tmp_dir, time.monotonic(), log_file)


def wait_ready(target: TargetProcess, ready_url: str, timeout_s: float) -> float:
    """Poll ``ready_url`` until it answers 200; returns seconds since start."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _remember_descendants(target)
        if target.popen.poll() is not None:
            raise TargetFailed(f"{target.name} exited with code {target.popen.returncode} "
                               f"before it was ready; log {target.log_path}:\n{target.log_tail()}")
        try:
            with urllib.request.urlopen(ready_url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - target.started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    raise TargetFailed(f"{target.name} was not ready at {ready_url} within {timeout_s:.0f}s; "
                       f"log {target.log_path}:\n{target.log_tail()}")


def wait_generating(target: TargetProcess, base_url: str, model: str, timeout_s: float) -> float:
    """Send a one-token chat request until it succeeds; returns seconds since start.

    A listening HTTP server is not a loaded engine: Ray Serve LLM, for one, lists its
    models while the engine is still starting.
    """
    body = json.dumps({"model": model, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "ready?"}]}).encode()
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if target.popen.poll() is not None:
            raise TargetFailed(f"{target.name} exited with code {target.popen.returncode}; "
                               f"log {target.log_path}:\n{target.log_tail()}")
        request = urllib.request.Request(f"{base_url}/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if response.status == 200:
                    return time.monotonic() - target.started
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1.0)
    raise TargetFailed(f"{target.name} did not generate within {timeout_s:.0f}s ({last}); "
                       f"log {target.log_path}:\n{target.log_tail()}")


def stop_target(target: TargetProcess, timeout_s: float = 60.0) -> int | None:
    """Stop the target and everything it started; returns the leader's exit code."""
    _remember_descendants(target)
    if target.popen.poll() is None:
        _signal_pid(target.pid, signal.SIGTERM)
        _wait(target.popen, timeout_s)
    _signal_group(target.pid, signal.SIGTERM)
    if _group_alive(target.pid):
        _wait_group(target.pid, 5.0)
    _signal_group(target.pid, signal.SIGKILL)
    for pid, start in target.known.items():  # descendants that left the group
        if _start_time(pid) == start:
            _signal_pid(pid, signal.SIGKILL)
    _wait_group(target.pid, 5.0)  # SIGKILL is delivered asynchronously
    if target.popen.poll() is None:
        target.popen.kill()
    try:
        return target.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None
    finally:
        target.log_file.close()


def target_pids(target: TargetProcess) -> list[int]:
    """The target's live processes: its process group and every descendant seen so far."""
    procs = _processes()
    _remember_descendants(target, procs)
    pids = {target.pid} | {pid for pid, fields in procs.items() if int(fields[2]) == target.pid}
    pids.update(pid for pid, start in target.known.items() if pid in procs and procs[pid][19] == start)
    return sorted(pids)


def make_tmp_dir(name: str) -> Path:
    """A short private temp dir (Ray's socket paths have a length limit)."""
    return Path(tempfile.mkdtemp(prefix=f"ltb-{name[:8]}-", dir="/tmp"))


def python() -> str:
    """The interpreter running the benchmark (targets use the same environment)."""
    return sys.executable


def _wait(popen: subprocess.Popen, timeout_s: float) -> None:
    try:
        popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """True while a process of the group is alive (zombies waiting to be reaped are not)."""
    return any(int(fields[2]) == pgid and fields[0] != "Z" for fields in _processes().values())


def _wait_group(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _processes() -> dict[int, list[str]]:
    """Every live process's ``stat_fields``, by PID."""
    procs: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None:
                procs[int(entry.name)] = fields
    return procs


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time), to recognise a PID later."""
    fields = stat_fields(pid)
    return None if fields is None else fields[19]


def _remember_descendants(target: TargetProcess, procs: dict[int, list[str]] | None = None) -> None:
    """Record the target's descendants (PID and start time) while they are alive."""
    procs = _processes() if procs is None else procs
    tree: dict[int, list[int]] = {}
    for pid, fields in procs.items():
        tree.setdefault(int(fields[1]), []).append(pid)
    stack = list(tree.get(target.pid, []))
    while stack:
        pid = stack.pop()
        target.known.setdefault(pid, procs[pid][19])
        stack.extend(tree.get(pid, []))
