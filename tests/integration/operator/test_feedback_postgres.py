"""The feedback store on a real PostgreSQL server (the multi-node production setting).

A throwaway cluster (initdb + pg_ctl, loopback, free port; ``postgres.py``) runs for this
module, another one for the fault test, which kills the database under concurrent
feedback posts. Needs the PostgreSQL server binaries (Debian ``postgresql``) and
``psycopg``: skipped without them, a failure under CI.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from serving.errors import ConflictError
from serving.feedback.models import Base
from serving.feedback.store import FeedbackStore
from tests.integration.operator.postgres import remove, start_postgres
from tests.unit.serving.feedback.conftest import feedback, record

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL 15 cluster of this module's own (see ``postgres.py``)."""
    server = start_postgres()
    yield server.url
    remove(server)


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


# -- the database dies under load -------------------------------------------------------------

WORKERS = 8  # concurrent clients posting feedback
OUTAGE_S = 2.0  # how long the database stays down


@pytest.fixture
def pg_server():
    """A cluster of this test's own: it gets killed."""
    server = start_postgres()
    yield server
    remove(server)


@pytest.mark.timeout(300)
async def test_killing_the_database_under_concurrent_feedback_loses_no_accepted_feedback(pg_server, tmp_path) -> None:
    import asyncio
    import time

    import httpx
    from sqlalchemy import create_engine, select

    from serving.config.settings import load_settings
    from serving.engine.fake import FakeEngine
    from serving.feedback.models import FeedbackRow
    from serving.ray_serve.deployments import build_asgi

    ids = [f"chatcmpl-pgfault{i:04d}" for i in range(800)]
    seed = FeedbackStore(pg_server.url).start()  # the responses, recorded before the outage
    for response_id in ids:
        seed.record_response(record(response_id, model="fake-model"))
    assert seed.flush()
    seed.close()

    settings = load_settings({"feedback": {"database_url": pg_server.url, "lookup_grace_s": 0.2}})
    app = build_asgi(settings, FakeEngine(), {})  # the replica's app, as Serve runs it
    accepted: set[str] = set()  # 201
    refused: list[str] = []  # 503, to be retried once the database is back
    statuses: list[int] = []
    pending = list(ids)
    outage = {"start": 0.0, "end": 0.0}

    async def post(client: httpx.AsyncClient, response_id: str) -> int:
        r = await client.post("/v1/feedback", json={"response_id": response_id, "score": 4}, timeout=30)
        statuses.append(r.status_code)
        if r.status_code == 201:
            accepted.add(response_id)
        elif r.status_code == 503:
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == "database_unavailable" and r.headers["retry-after"] == "1"
            refused.append(response_id)
        else:
            raise AssertionError(f"{response_id}: {r.status_code} {r.text[:300]}")
        return r.status_code

    async def worker(client: httpx.AsyncClient) -> None:
        while pending:
            await post(client, pending.pop())
            await asyncio.sleep(0.03)

    async def chaos() -> None:
        await asyncio.sleep(0.5)  # some feedback lands first
        outage["start"] = time.monotonic()
        await asyncio.to_thread(pg_server.kill)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(pg_server.start)  # crash recovery, then up again
        outage["end"] = time.monotonic()

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            await asyncio.wait_for(asyncio.gather(chaos(), *(worker(client) for _ in range(WORKERS))), 240)
            assert outage["end"], "the database was never restarted"
            # Posts refused during the outage are retried: stored once (201), or already stored (409:
            # the commit went through but its answer was lost with the connection).
            retried = {}
            for response_id in list(refused):
                r = await client.post("/v1/feedback", json={"response_id": response_id, "score": 4}, timeout=30)
                retried[response_id] = r.status_code
            assert set(retried.values()) <= {201, 409}, retried
    finally:
        app.state.extensions.close()

    print(f"\n{len(statuses)} posts: {statuses.count(201)} 201, {statuses.count(503)} 503; retried {len(refused)}")
    assert 500 not in statuses and set(statuses) <= {201, 503}
    assert refused, "no post hit the outage"
    assert len(accepted) + len(set(refused)) == len(ids)  # every post was answered 201 or 503
    with create_engine(pg_server.url).connect() as conn:
        stored = [r[0] for r in conn.execute(select(FeedbackRow.response_id))]
    assert accepted <= set(stored), f"accepted but lost: {sorted(accepted - set(stored))[:5]}"
    assert sorted(stored) == sorted(set(stored)) and set(stored) == set(ids)  # once each, none lost
