"""The feedback store: response metadata written off the hot path, feedback written at once.

``record_response`` only puts a row on an in-memory queue (never blocks, never
raises); a background thread writes queued rows in batches, one transaction per
batch, at least every ``flush_interval_s``. Feedback is written synchronously (the
API call returns after the commit), so an acknowledged feedback is on disk.

Every replica process opens its own store on the same database: a SQLite file on
one node (WAL + busy timeout + BEGIN IMMEDIATE, see ``db.py``), or PostgreSQL when
replicas run on several nodes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Engine, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from serving.errors import ConflictError, NotFoundError, ServiceUnavailableError
from serving.feedback.db import create_db_engine
from serving.feedback.migrate import upgrade
from serving.feedback.models import ConversationRow, FeedbackRow, ResponseRow

logger = logging.getLogger(__name__)

BATCH_ROWS = 500
PURGE_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class ResponseRecord:
    """What the request path knows about one finished response (no text)."""

    response_id: str
    model: str
    model_version: str
    route: str
    stream: bool
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    moderation: str | None
    key_id: str | None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


@dataclass(frozen=True)
class Conversation:
    """The text of one response, kept only when the deployment opted in.

    ``redact`` (PII masking) is applied by the store's writer thread, never on the
    request's event loop; without it the text is stored as given.
    """

    messages: list[dict[str, str]] | None
    prompt: str | None
    completions: list[str]
    redact: Callable[[str], str] | None = field(default=None, repr=False, compare=False)

    def row(self) -> dict[str, Any]:
        """The stored columns: the text, redacted."""
        clean = self.redact or (lambda text: text)
        messages = None
        if self.messages is not None:
            messages = [{**m, "content": clean(m.get("content", ""))} for m in self.messages]
        return {
            "messages": messages,
            "prompt": clean(self.prompt) if self.prompt is not None else None,
            "completions": [clean(text) for text in self.completions],
        }


@dataclass(frozen=True)
class FeedbackInput:
    """A validated feedback submission."""

    response_id: str
    thumbs: str | None
    score: int | None
    comment: str | None
    tags: tuple[str, ...]
    key_id: str | None


@dataclass(frozen=True)
class StoredFeedback:
    """A feedback row as stored, with the response's model for metrics."""

    id: str
    response_id: str
    created_at: dt.datetime
    model: str
    model_version: str
    thumbs: str | None
    score: int | None


class FeedbackStore:
    """Response metadata + feedback in one database."""

    def __init__(
        self,
        database_url: str,
        *,
        flush_interval_s: float = 0.2,
        max_pending: int = 10_000,
        retention_days: int = 30,
        purge_interval_s: float | None = PURGE_INTERVAL_S,
        engine: Engine | None = None,
        password_file: Path | None = None,
    ) -> None:
        self.engine = engine or create_db_engine(database_url, password_file=password_file)
        self.engine.hide_parameters = True  # a logged DB error never quotes bound values (comments, ids)
        self.flush_interval_s = flush_interval_s
        self.retention_days = retention_days
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        # Response ids queued here and not yet written: feedback on one of them waits for this
        # store's writer; any other id is looked up at once (no flush, no thread held waiting).
        self._buffered: dict[str, int] = {}
        self._buffered_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.dropped = 0
        self.write_errors = 0
        self.purge_interval_s = purge_interval_s  # None: only explicit purge() calls
        self._last_purge = 0.0  # the first purge runs soon after start

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> "FeedbackStore":
        """Migrate the schema and start the background writer."""
        upgrade(self.engine)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="feedback-writer", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, stop the writer, close the connections."""
        if self._thread is not None:
            self._stopping.set()
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        self.engine.dispose()

    # -- response metadata (hot path) ----------------------------------------------

    def record_response(self, record: ResponseRecord, conversation: Conversation | None = None) -> bool:
        """Queue one response's metadata; False (and counted) when the queue is full."""
        self._buffer(record.response_id, +1)
        try:
            self._queue.put_nowait((record, conversation))
            return True
        except queue.Full:
            self._buffer(record.response_id, -1)
            self.dropped += 1
            return False

    def _buffer(self, response_id: str, delta: int) -> None:
        with self._buffered_lock:
            count = self._buffered.get(response_id, 0) + delta
            if count > 0:
                self._buffered[response_id] = count
            else:
                self._buffered.pop(response_id, None)

    def is_buffered(self, response_id: str) -> bool:
        """Whether a record of ``response_id`` is queued here and not yet written."""
        with self._buffered_lock:
            return response_id in self._buffered

    async def flush_async(self, timeout: float = 10.0) -> bool:
        """Wait on the event loop (no thread blocked) until everything queued before is written."""
        if self._thread is None:
            return False
        loop = asyncio.get_running_loop()
        written = loop.create_future()

        def notify() -> None:  # runs on the writer thread
            try:
                loop.call_soon_threadsafe(lambda: written.done() or written.set_result(True))
            except RuntimeError:  # the waiter's loop is closed: nobody is waiting any more
                pass

        try:
            self._queue.put_nowait(_Notify(notify))
        except queue.Full:  # the writer is far behind: do not wait for it
            return False
        try:
            return await asyncio.wait_for(written, timeout)
        except TimeoutError:
            return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued before this call is written."""
        if self._thread is None:
            return False
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                self._maybe_purge()
                continue
            items = [first]
            while len(items) < BATCH_ROWS:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [i for i in items if isinstance(i, tuple)]
            if rows:
                self._write(rows)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
                elif isinstance(item, _Notify):
                    item.callback()
            if any(i is None for i in items) or (self._stopping.is_set() and self._queue.empty()):
                return
            self._maybe_purge()

    def _write(self, rows: list[tuple[ResponseRecord, Conversation | None]]) -> None:
        responses = [asdict(record) for record, _ in rows]
        conversations = [
            {"response_id": record.response_id, **conv.row()} for record, conv in rows if conv is not None
        ]
        try:
            self._write_rows(responses, conversations, len(rows))
        finally:
            for record, _ in rows:
                self._buffer(record.response_id, -1)

    def _write_rows(self, responses: list[dict[str, Any]], conversations: list[dict[str, Any]], count: int) -> None:
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(ResponseRow).on_conflict_do_nothing(), responses)
                    if conversations:
                        conn.execute(insert(ConversationRow).on_conflict_do_nothing(), conversations)
                return
            except Exception:
                if attempt == 2:
                    self.write_errors += 1
                    logger.exception("feedback store: writing %d response record(s) failed", count)
                else:
                    time.sleep(0.2 * (attempt + 1))

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if self.purge_interval_s is None or now - self._last_purge < self.purge_interval_s:
            return
        self._last_purge = now
        try:
            self.purge()
        except Exception:
            logger.exception("feedback store: purge failed")

    def purge(self, now: dt.datetime | None = None) -> int:
        """Delete response metadata (and text) past retention that got no feedback."""
        cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=self.retention_days)
        with self.engine.begin() as conn:
            stale = select(ResponseRow.response_id).where(
                ResponseRow.created_at < cutoff,
                ~exists().where(FeedbackRow.response_id == ResponseRow.response_id),
            )
            conn.execute(delete(ConversationRow).where(ConversationRow.response_id.in_(stale)))
            result = conn.execute(delete(ResponseRow).where(ResponseRow.response_id.in_(stale)))
        return result.rowcount or 0

    # -- feedback ------------------------------------------------------------------

    def add_feedback(self, feedback: FeedbackInput, *, wait_for_buffer: bool = True) -> StoredFeedback:
        """Store one feedback; NotFoundError for an unknown response, ConflictError for a second one.

        ``wait_for_buffer``: a response still in this store's write buffer is flushed first
        (blocking this thread); the API awaits ``flush_async`` itself and passes False. A
        database that cannot be reached (or fails the commit) is ServiceUnavailableError
        (503): the feedback was not stored, the client may retry it.
        """
        try:
            return self._add_feedback(feedback, wait_for_buffer)
        except SQLAlchemyError as exc:  # IntegrityError (a duplicate) is handled inside
            logger.warning("feedback store: database unavailable (%s)", type(exc).__name__)
            raise ServiceUnavailableError(
                "the feedback database is unavailable", code="database_unavailable", headers={"retry-after": "1"}
            ) from exc

    def _add_feedback(self, feedback: FeedbackInput, wait_for_buffer: bool) -> StoredFeedback:
        response = self._response(feedback.response_id, feedback.key_id, wait_for_buffer=wait_for_buffer)
        row = FeedbackRow(
            id=f"fb-{secrets.token_hex(12)}",
            response_id=feedback.response_id,
            created_at=dt.datetime.now(dt.timezone.utc),
            thumbs=feedback.thumbs,
            score=feedback.score,
            comment=feedback.comment,
            tags=list(feedback.tags),
            key_id=feedback.key_id,
        )
        stored = StoredFeedback(
            id=row.id,
            response_id=row.response_id,
            created_at=row.created_at,
            model=response.model,
            model_version=response.model_version,
            thumbs=row.thumbs,
            score=row.score,
        )
        try:
            with Session(self.engine) as session, session.begin():
                already = session.scalar(select(FeedbackRow.id).where(FeedbackRow.response_id == feedback.response_id))
                if already is not None:
                    raise _duplicate(feedback.response_id)
                session.add(row)
        except IntegrityError as exc:  # a concurrent duplicate won the race
            raise _duplicate(feedback.response_id) from exc
        return stored

    def _response(self, response_id: str, key_id: str | None, *, wait_for_buffer: bool = True) -> ResponseRow:
        """The response row (flushing this store's buffer once if it holds the id); NotFoundError
        if unknown, or another key's (no existence leak)."""
        buffered = wait_for_buffer and self.is_buffered(response_id)  # before the lookup: no race with the writer
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(ResponseRow, response_id)
        if row is None and buffered and self.flush():
            with Session(self.engine, expire_on_commit=False) as session:
                row = session.get(ResponseRow, response_id)
        if row is None or (row.key_id is not None and key_id is not None and row.key_id != key_id):
            raise NotFoundError(
                f"No response with id '{response_id}' was found (it may be older than the "
                "retention period, or belong to another API key).",
                param="response_id",
                code="response_not_found",
            )
        return row

    # -- export ----------------------------------------------------------------------

    def iter_feedback(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        model: str | None = None,
        thumbs: str | None = None,
        with_conversations: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Feedback joined with its response's metadata (and text when asked and stored)."""
        columns = [FeedbackRow, ResponseRow]
        query = select(*columns).join(ResponseRow, FeedbackRow.response_id == ResponseRow.response_id)
        if with_conversations:
            query = query.add_columns(ConversationRow).outerjoin(
                ConversationRow, ConversationRow.response_id == FeedbackRow.response_id
            )
        if since is not None:
            query = query.where(FeedbackRow.created_at >= since)
        if until is not None:
            query = query.where(FeedbackRow.created_at < until)
        if model is not None:
            query = query.where(ResponseRow.model == model)
        if thumbs is not None:
            query = query.where(FeedbackRow.thumbs == thumbs)
        query = query.order_by(FeedbackRow.created_at, FeedbackRow.id)
        with Session(self.engine) as session:
            for result in session.execute(query):
                yield _export_row(result[0], result[1], result[2] if with_conversations else None, with_conversations)


@dataclass(frozen=True)
class _Notify:
    """A writer-queue item: call ``callback`` once everything queued before it is written."""

    callback: Callable[[], None]


def _duplicate(response_id: str) -> ConflictError:
    return ConflictError(
        f"Feedback for response '{response_id}' was already submitted.",
        param="response_id",
        code="duplicate_feedback",
    )


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _export_row(
    fb: FeedbackRow, resp: ResponseRow, conv: ConversationRow | None, with_conversations: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "feedback_id": fb.id,
        "response_id": fb.response_id,
        "feedback_created_at": _iso(fb.created_at),
        "thumbs": fb.thumbs,
        "score": fb.score,
        "comment": fb.comment,
        "tags": list(fb.tags or []),
        "model": resp.model,
        "model_version": resp.model_version,
        "route": resp.route,
        "stream": resp.stream,
        "response_created_at": _iso(resp.created_at),
        "latency_s": resp.latency_s,
        "prompt_tokens": resp.prompt_tokens,
        "completion_tokens": resp.completion_tokens,
        "finish_reason": resp.finish_reason,
        "moderation": resp.moderation,
        "key_id": resp.key_id,
    }
    if with_conversations:
        row["messages"] = conv.messages if conv is not None else None
        row["prompt"] = conv.prompt if conv is not None else None
        row["completions"] = conv.completions if conv is not None else None
    return row
