"""Helpers of the feedback unit tests: a store on a temporary SQLite file, records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from serving.feedback.store import FeedbackInput, FeedbackStore, ResponseRecord


def record(response_id: str, **values) -> ResponseRecord:
    """A response record with plausible metadata."""
    base = dict(
        response_id=response_id,
        model="m",
        model_version="1",
        route="/v1/chat/completions",
        stream=False,
        latency_s=0.25,
        prompt_tokens=12,
        completion_tokens=5,
        finish_reason="stop",
        moderation="passed",
        key_id=None,
    )
    return ResponseRecord(**{**base, **values})


def feedback(response_id: str, **values) -> FeedbackInput:
    base = dict(response_id=response_id, thumbs="up", score=None, comment=None, tags=(), key_id=None)
    return FeedbackInput(**{**base, **values})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/feedback.sqlite3"


@pytest.fixture
def store(db_url: str):
    s = FeedbackStore(db_url, flush_interval_s=0.02).start()
    yield s
    s.close()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)
