"""The feedback store: batched response records, feedback rules, concurrency, restart, retention."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select, text

from serving.errors import ConflictError, NotFoundError
from serving.feedback.models import ConversationRow, ResponseRow
from serving.feedback.store import Conversation, FeedbackStore
from tests.unit.serving.feedback.conftest import feedback, record, utc


def count(store: FeedbackStore, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def ids(store: FeedbackStore) -> set[str]:
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(ResponseRow.response_id))}


def test_records_are_written_in_the_background(store: FeedbackStore) -> None:
    for i in range(50):
        assert store.record_response(record(f"chatcmpl-{i}"))
    assert store.flush()
    assert count(store, ResponseRow) == 50


def test_feedback_round_trip_joined_to_metadata(store: FeedbackStore) -> None:
    store.record_response(record("chatcmpl-a", model_version="7", finish_reason="length", key_id="k1"))
    stored = store.add_feedback(feedback("chatcmpl-a", thumbs="down", score=2, comment="too short", tags=("short",), key_id="k1"))
    assert stored.id.startswith("fb-") and stored.model_version == "7"
    [row] = list(store.iter_feedback())
    assert row["response_id"] == "chatcmpl-a" and row["thumbs"] == "down" and row["score"] == 2
    assert row["comment"] == "too short" and row["tags"] == ["short"]
    assert row["finish_reason"] == "length" and row["prompt_tokens"] == 12 and row["latency_s"] == 0.25
    assert "messages" not in row  # no text unless asked for (and stored)


def test_a_record_still_in_the_write_buffer_is_found(db_url: str) -> None:
    slow = FeedbackStore(db_url, flush_interval_s=30.0).start()
    try:
        slow.record_response(record("chatcmpl-fresh"))
        assert slow.add_feedback(feedback("chatcmpl-fresh")).response_id == "chatcmpl-fresh"
    finally:
        slow.close()


def test_unknown_and_duplicate(store: FeedbackStore) -> None:
    with pytest.raises(NotFoundError) as missing:
        store.add_feedback(feedback("chatcmpl-missing"))
    assert missing.value.code == "response_not_found" and missing.value.param == "response_id"
    store.record_response(record("chatcmpl-b"))
    store.add_feedback(feedback("chatcmpl-b"))
    with pytest.raises(ConflictError) as dup:
        store.add_feedback(feedback("chatcmpl-b", thumbs="down"))
    assert dup.value.status_code == 409 and dup.value.code == "duplicate_feedback"


def test_feedback_on_another_keys_response_looks_unknown(store: FeedbackStore) -> None:
    store.record_response(record("chatcmpl-k", key_id="owner"))
    with pytest.raises(NotFoundError):
        store.add_feedback(feedback("chatcmpl-k", key_id="someone-else"))
    assert store.add_feedback(feedback("chatcmpl-k", key_id="owner"))


def test_concurrent_feedback_loses_nothing_and_duplicates_race_safely(db_url: str) -> None:
    stores = [FeedbackStore(db_url, flush_interval_s=0.02).start() for _ in range(3)]  # like 3 replicas
    try:
        for i in range(60):
            stores[i % 3].record_response(record(f"chatcmpl-{i}"))
        for s in stores:
            s.flush()
        results: list[str] = []
        errors: list[Exception] = []

        def post(i: int) -> None:
            try:
                stores[i % 3].add_feedback(feedback(f"chatcmpl-{i % 60}", score=1 + i % 5))
                results.append("ok")
            except ConflictError:
                results.append("dup")
            except Exception as exc:  # pragma: no cover - would fail the test below
                errors.append(exc)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(120)]  # each id twice
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert results.count("ok") == 60 and results.count("dup") == 60
    finally:
        for s in stores:
            s.close()
    reopened = FeedbackStore(db_url).start()  # a restart: everything acknowledged is on disk
    try:
        assert len(list(reopened.iter_feedback())) == 60
    finally:
        reopened.close()


def test_close_writes_what_is_queued(db_url: str) -> None:
    s = FeedbackStore(db_url, flush_interval_s=10.0).start()
    for i in range(20):
        s.record_response(record(f"chatcmpl-{i}"))
    s.close()
    reopened = FeedbackStore(db_url).start()
    try:
        assert count(reopened, ResponseRow) == 20
    finally:
        reopened.close()


def test_full_queue_drops_instead_of_blocking(db_url: str) -> None:
    s = FeedbackStore(db_url, max_pending=3)  # not started: nothing drains the queue
    results = [s.record_response(record(f"chatcmpl-{i}")) for i in range(5)]
    assert results == [True, True, True, False, False] and s.dropped == 2
    s.engine.dispose()


def test_duplicate_records_are_ignored(store: FeedbackStore) -> None:
    store.record_response(record("chatcmpl-same"))
    store.record_response(record("chatcmpl-same", latency_s=9.0))
    store.flush()
    assert count(store, ResponseRow) == 1


def test_conversations_only_when_given(store: FeedbackStore) -> None:
    store.record_response(record("chatcmpl-t"), Conversation([{"role": "user", "content": "hi"}], None, ["hello"]))
    store.record_response(record("chatcmpl-n"))
    store.add_feedback(feedback("chatcmpl-t"))
    store.add_feedback(feedback("chatcmpl-n"))
    assert count(store, ConversationRow) == 1
    rows = {r["response_id"]: r for r in store.iter_feedback(with_conversations=True)}
    assert rows["chatcmpl-t"]["messages"] == [{"role": "user", "content": "hi"}]
    assert rows["chatcmpl-t"]["completions"] == ["hello"]
    assert rows["chatcmpl-n"]["messages"] is None


def test_filters(store: FeedbackStore) -> None:
    store.record_response(record("chatcmpl-1", model="a"))
    store.record_response(record("chatcmpl-2", model="b"))
    store.add_feedback(feedback("chatcmpl-1", thumbs="up"))
    store.add_feedback(feedback("chatcmpl-2", thumbs="down"))
    assert [r["response_id"] for r in store.iter_feedback(model="b")] == ["chatcmpl-2"]
    assert [r["response_id"] for r in store.iter_feedback(thumbs="up")] == ["chatcmpl-1"]
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    assert list(store.iter_feedback(since=future)) == []
    assert len(list(store.iter_feedback(until=future))) == 2


def test_purge_keeps_rated_responses(db_url: str) -> None:
    store = FeedbackStore(db_url, flush_interval_s=0.02, purge_interval_s=None).start()
    old = utc(2020, 1, 1)
    store.record_response(record("chatcmpl-old", created_at=old), Conversation(None, "p", ["c"]))
    store.record_response(record("chatcmpl-old-rated", created_at=old))
    store.record_response(record("chatcmpl-new"))
    store.add_feedback(feedback("chatcmpl-old-rated"))
    assert store.purge() == 1
    assert ids(store) == {"chatcmpl-old-rated", "chatcmpl-new"} and count(store, ConversationRow) == 0
    store.close()


def test_the_writer_purges_on_its_own(db_url: str) -> None:
    store = FeedbackStore(db_url, flush_interval_s=0.02, purge_interval_s=0.05).start()
    try:
        store.record_response(record("chatcmpl-ancient", created_at=utc(2020, 1, 1)))
        store.record_response(record("chatcmpl-recent"))
        deadline = time.monotonic() + 5
        while ids(store) != {"chatcmpl-recent"}:
            assert time.monotonic() < deadline, "the old record was never purged"
            time.sleep(0.05)
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode(store: FeedbackStore) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 10_000


def test_database_errors_never_carry_bound_parameters(store: FeedbackStore) -> None:
    """A failing statement's error (which the writer logs) does not quote the values (feedback comments)."""
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as caught:
        with store.engine.connect() as conn:
            conn.execute(text("INSERT INTO no_such_table VALUES (:comment)"), {"comment": "call alice@example.com"})
    assert "alice@example.com" not in str(caught.value)
