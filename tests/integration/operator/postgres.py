"""A throwaway PostgreSQL server for tests: its own cluster in a temp dir, loopback, a free port.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres``
user (the Debian package creates it) and every server command runs through
``runuser -u postgres --``. ``pg_ctl`` runs in its own session, and the postmaster
puts itself in its own one too (so ``kill()`` can take down the postmaster and every
backend at once, like a crash). ``stop()`` is ``pg_ctl stop -m fast``.

Missing binaries skip the test on a developer's machine; under CI (``CI`` set) they are
a failure: ``make system-deps`` installs the Debian ``postgresql`` package.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PREFERRED_VERSION = "15"  # Debian bookworm's; any other installed major version is used if 15 is not
SERVER_USER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are (PostgreSQL 15 preferred), or None."""
    root = Path("/usr/lib/postgresql")
    candidates = [root / PREFERRED_VERSION / "bin"]
    if root.is_dir():
        candidates += sorted((p / "bin" for p in root.iterdir()), key=lambda p: p.parent.name, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def require_postgres() -> Path:
    """The server binaries' folder; skips (no ``CI``) or fails (``CI`` set) when they are missing."""
    missing: list[str] = []
    bindir = server_bindir()
    if bindir is None:
        missing.append("the PostgreSQL server binaries (Debian package `postgresql`)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing.append("the `psycopg` driver (the `postgres` extra)")
    if missing:
        what = " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing; CI needs them (`make system-deps`, `make setup`)")
        pytest.skip(f"{what} missing (apt-get install postgresql, or `make system-deps`)")
    assert bindir is not None
    return bindir


@dataclass
class PostgresServer:
    """One running cluster: ``url``, and ``kill()`` / ``start()`` / ``stop()`` for fault tests."""

    bindir: Path
    root: Path
    port: int = field(default_factory=_free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database (trust auth on loopback)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=timeout, start_new_session=True
        )
        if result.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{log}")

    def init(self) -> "PostgresServer":
        """Create the cluster (no fsync: a test database; committed data survives a process kill)."""
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        return self

    def start(self) -> None:
        """Start (or restart after ``kill``: crash recovery) and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def pid(self) -> int | None:
        """The postmaster's pid (first line of postmaster.pid), while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends at once (a crash), and wait until they are gone."""
        pid = self.pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGKILL)  # the postmaster leads its own process group
        deadline = time.monotonic() + 30
        while _group_alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres process group {pid} still alive after SIGKILL")
            time.sleep(0.05)

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (no-op when it is not running); SIGKILL if that fails."""
        pid = self.pid()
        if pid is None or not _group_alive(pid):  # never started, or killed (a stale postmaster.pid)
            return
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
        except RuntimeError:  # e.g. stopped while a restart was still under way
            self.kill()


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies not reaped by PID 1 do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields after "(comm)": state, ppid, pgrp
            return True
    return False


def start_postgres() -> PostgresServer:
    """A new cluster, running. Call ``stop()`` and ``remove()`` when done."""
    bindir = require_postgres()
    root = Path(tempfile.mkdtemp(prefix="pg-test-", dir="/tmp"))  # pytest's tmp dirs are 0700 root
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER, SERVER_USER)
    server = PostgresServer(bindir=bindir, root=root).init()
    try:
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def remove(server: PostgresServer) -> None:
    """Stop the server and delete its files."""
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
