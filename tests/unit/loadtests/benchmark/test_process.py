"""Target processes: readiness, failure reporting, and a clean stop of the whole group."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from loadtests.benchmark.process import (
    TargetFailed,
    start_target,
    stop_target,
    wait_generating,
    wait_ready,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_scripted_server_target_becomes_ready_and_stops(tmp_path) -> None:
    port = free_port()
    target = start_target("s", [sys.executable, "-m", "loadtests.scripted_server", "--port",
                                str(port)], {}, tmp_path / "s.log", tmp_path)
    try:
        assert wait_ready(target, f"http://127.0.0.1:{port}/v1/models", 30) < 30
    finally:
        code = stop_target(target, 10)
    assert code is not None and not alive(target.pid)


def test_a_target_that_exits_is_reported_with_its_log(tmp_path) -> None:
    script = "import sys; print('boom: missing engine'); sys.exit(3)"
    target = start_target("bad", [sys.executable, "-c", script], {}, tmp_path / "b.log", tmp_path)
    with pytest.raises(TargetFailed, match="exited with code 3(.|\n)*boom: missing engine"):
        wait_ready(target, f"http://127.0.0.1:{free_port()}/", 30)
    stop_target(target, 5)


def test_a_target_that_never_gets_ready_times_out(tmp_path) -> None:
    target = start_target("slow", [sys.executable, "-c", "import time; time.sleep(60)"], {},
                          tmp_path / "t.log", tmp_path)
    started = time.monotonic()
    with pytest.raises(TargetFailed, match="not ready"):
        wait_ready(target, f"http://127.0.0.1:{free_port()}/", 1.5)
    assert time.monotonic() - started < 10
    stop_target(target, 5)
    assert not alive(target.pid)


def test_stop_kills_children_that_ignore_sigterm_and_env_is_passed(tmp_path) -> None:
    # the leader starts a child that ignores SIGTERM, writes both PIDs, and waits
    pids = tmp_path / "pids"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}} ' + os.environ['MARK'])\n"
        "time.sleep(120)\n"
    )
    target = start_target("tree", [sys.executable, "-c", script], {"MARK": "ok"},
                          tmp_path / "tree.log", tmp_path)
    deadline = time.monotonic() + 20
    while not (pids.exists() and len(pids.read_text().split()) == 3):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    leader, child, mark = pids.read_text().split()
    assert mark == "ok"
    started = time.monotonic()
    stop_target(target, 2)
    assert not alive(int(leader)) and not alive(int(child))
    assert time.monotonic() - started < 15


def test_ready_means_generating_not_just_listening(tmp_path) -> None:
    port = free_port()  # a server that lists models but answers every generation with 503
    target = start_target("s", [sys.executable, "-m", "loadtests.scripted_server", "--port",
                                str(port), "--status", "503"], {}, tmp_path / "s.log", tmp_path)
    try:
        wait_ready(target, f"http://127.0.0.1:{port}/v1/models", 30)
        with pytest.raises(TargetFailed, match="did not generate within 2s \\(HTTP 503\\)"):
            wait_generating(target, f"http://127.0.0.1:{port}/v1", "scripted", 2)
    finally:
        stop_target(target, 5)
