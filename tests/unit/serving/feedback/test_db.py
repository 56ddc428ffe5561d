"""Database engines: the PostgreSQL password comes from a file, read at every new connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from serving.feedback.db import create_db_engine
from serving.config.feedback import FeedbackSettings
from serving.feedback.store import FeedbackStore

URL = "postgresql+psycopg://llm_serving@postgres.llm-serving.svc:5432/feedback"


class Stop(Exception):
    """Raised instead of dialling the (absent) server."""


def connect_params(engine) -> dict:
    """The keyword arguments the driver's connect() would get for a new connection."""
    seen: dict = {}

    @event.listens_for(engine, "do_connect")
    def _capture(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        seen.update(cparams)
        raise Stop

    with pytest.raises(Exception) as info:
        engine.connect()
    assert isinstance(info.value, Stop) or isinstance(getattr(info.value, "orig", None), Stop)
    event.remove(engine, "do_connect", _capture)
    return seen


def test_password_file_is_read_at_each_connection(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")  # `kubectl create secret --from-file` keeps a trailing newline
    engine = create_db_engine(URL, password_file=secret)
    params = connect_params(engine)
    assert params["password"] == "s3cret"
    assert params["host"] == "postgres.llm-serving.svc" and params["user"] == "llm_serving"
    secret.write_text("rotated")  # a rotated Secret reaches new connections without a restart
    engine.pool.dispose()
    assert connect_params(engine)["password"] == "rotated"
    assert "s3cret" not in repr(engine.url) and engine.url.password is None


def test_no_password_file_leaves_the_url_alone(tmp_path: Path) -> None:
    engine = create_db_engine("postgresql+psycopg://u:inline@db/feedback")
    assert connect_params(engine)["password"] == "inline"


def test_a_missing_password_file_fails_at_connect_naming_it(tmp_path: Path) -> None:
    engine = create_db_engine(URL, password_file=tmp_path / "absent")
    with pytest.raises(Exception, match="absent"):
        engine.connect()


def test_sqlite_refuses_a_password_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="database_password_file"):
        create_db_engine(f"sqlite:///{tmp_path}/f.sqlite3", password_file=tmp_path / "password")


def test_the_store_and_the_settings_carry_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("pw")
    settings = FeedbackSettings(database_url=URL, database_password_file=secret)
    assert settings.database_password_file == secret
    assert FeedbackSettings().database_password_file is None
    store = FeedbackStore(settings.database_url, password_file=settings.database_password_file)
    assert connect_params(store.engine)["password"] == "pw"
    store.close()
    with pytest.raises(ValueError, match="database_password_file"):
        FeedbackSettings(database_url="postgresql+psycopg://u:inline@db/feedback", database_password_file=secret)
