"""The feedback store on a real PostgreSQL server (the multi-node production setting).

A throwaway cluster (initdb + pg_ctl, loopback, free port) runs for this module only.
Needs the PostgreSQL server binaries (Debian ``postgresql``) and ``psycopg``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from serving.errors import ConflictError
from serving.feedback.models import Base
from serving.feedback.store import FeedbackStore
from tests.unit.serving.feedback.conftest import feedback, record

REPO = Path(__file__).resolve().parents[3]
BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url() -> str:
    pytest.importorskip("psycopg", reason="psycopg is needed for PostgreSQL URLs")
    if not BINDIRS:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    bindir = Path(BINDIRS[0])
    root = Path(tempfile.mkdtemp(prefix="pg-feedback-", dir="/tmp"))  # pytest's tmp is not reachable by postgres
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)


def test_migrations_build_the_model_schema_once(pg_url: str) -> None:
    stores = [FeedbackStore(pg_url) for _ in range(3)]
    threads = [threading.Thread(target=s.start) for s in stores]  # replicas starting together
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stores[0].engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    for s in stores:
        s.close()


def test_round_trip_concurrency_and_export(pg_url: str) -> None:
    stores = [FeedbackStore(pg_url, flush_interval_s=0.02).start() for _ in range(3)]
    try:
        for i in range(30):
            stores[i % 3].record_response(record(f"pg-{i}", model_version="pg"))
        stores[0].record_response(record("pg-0"))  # a duplicate record is ignored
        for s in stores:
            s.flush()
        outcomes: list[str] = []

        def post(i: int) -> None:
            try:
                stores[i % 3].add_feedback(feedback(f"pg-{i % 30}", score=1 + i % 5, tags=("x",)))
                outcomes.append("ok")
            except ConflictError:
                outcomes.append("dup")

        threads = [threading.Thread(target=post, args=(i,)) for i in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("ok") == 30 and outcomes.count("dup") == 30
    finally:
        for s in stores:
            s.close()
    result = subprocess.run(
        [sys.executable, "-m", "serving.feedback.export", "--database-url", pg_url, "--format", "csv"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 + 30
