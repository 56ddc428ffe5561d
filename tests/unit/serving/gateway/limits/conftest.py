"""A real ``redis-server`` for the Redis store's tests, one per test, in its own process group.

Skips when the binary is missing on a developer's machine; under CI (``CI`` set) a
missing binary is a failure: ``make system-deps`` installs the Debian package.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One running redis-server: its URL, and ``stop()`` (SIGTERM to its process group)."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server (idempotent); used mid-test to take Redis down."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # start_new_session: pgid == pid
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path):
    """A fresh redis-server on a free loopback port, nothing persisted."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; CI needs it (`make system-deps` installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server, or `make system-deps`)")
    port = _free_port()
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RedisServer(process=process, port=port, log=log)
    deadline = time.monotonic() + 10
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"redis-server did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.stop()
