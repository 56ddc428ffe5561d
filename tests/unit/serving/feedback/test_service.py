"""POST /v1/feedback holds worker threads only for single lookups: an unknown id waits on the
event loop, a response still in this replica's write buffer is awaited without a thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import httpx
import pytest

from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine
from tests.unit.apps import build_app
from tests.unit.serving.feedback.conftest import record

GRACE_S = 1.0  # feedback.lookup_grace_s (the default)


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (``asyncio.to_thread``), counting jobs and their thread time."""

    def __init__(self) -> None:
        super().__init__(max_workers=6)  # what a 2-core machine's default pool has
        self.jobs: list[float] = []
        self.running = 0
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        def timed():
            with self._lock:
                self.running += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1
                    self.jobs.append(time.perf_counter() - started)

        return super().submit(timed)


@pytest.fixture
def app_and_store(db_url: str):
    settings = load_settings({"feedback": {"database_url": db_url, "lookup_grace_s": GRACE_S}})
    engine = FakeEngine()
    app = build_app(settings, engine)
    op = app.state.extensions
    yield app, op.components["feedback_store"]


@pytest.fixture
async def executor():
    pool = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(pool)
    yield pool
    pool.shutdown(wait=False)


async def test_50_concurrent_unknown_ids_are_404_without_holding_threads(app_and_store, executor, monkeypatch) -> None:
    app, store = app_and_store
    flushes: list[float] = []
    monkeypatch.setattr(store, "flush", lambda *a, **kw: flushes.append(1) or True)  # the blocking wait
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    started = time.monotonic()
    responses = await asyncio.gather(
        *(client.post("/v1/feedback", json={"response_id": f"chatcmpl-{i:024x}", "score": 3}) for i in range(50))
    )
    wall = time.monotonic() - started
    assert {r.status_code for r in responses} == {404}
    assert {r.json()["error"]["code"] for r in responses} == {"response_not_found"}
    # The grace for other replicas' write buffers is waited out on the event loop (before:
    # each post held a worker thread for it). Structural checks, not timings: no thread ever
    # blocked waiting for a writer, and each post costs a handful of single lookups.
    assert wall >= GRACE_S, wall
    assert not flushes
    assert len(executor.jobs) <= 50 * 7


async def test_a_response_in_this_replicas_write_buffer_is_awaited_on_the_loop(app_and_store, executor) -> None:
    app, store = app_and_store
    release = threading.Event()
    write = store._write

    def stalled_write(*args, **kwargs):  # the database is slow: the record stays buffered
        release.wait(10)
        return write(*args, **kwargs)

    store._write = stalled_write
    store.record_response(record("chatcmpl-buffered", model="fake-model"))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    post = asyncio.create_task(client.post("/v1/feedback", json={"response_id": "chatcmpl-buffered", "score": 5}))
    await asyncio.sleep(GRACE_S + 0.3)  # longer than the grace: a buffered record is not given up on
    assert not post.done()
    assert executor.running == 0  # the wait holds no worker thread
    release.set()
    r = await asyncio.wait_for(post, 10)
    assert r.status_code == 201, r.text
    assert len(executor.jobs) == 1  # one lookup + insert, after the write
