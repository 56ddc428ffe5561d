"""Database engines: SQLite (one node, WAL, busy timeout) or PostgreSQL (several nodes).

SQLite is shared by every replica process on a node: WAL mode lets readers work
while one process writes, ``busy_timeout`` makes writers queue instead of failing,
and every transaction starts with ``BEGIN IMMEDIATE`` so a read-then-write
transaction can never dead-end on a lock upgrade ("database is locked").

PostgreSQL's password may come from a file (a mounted Secret) instead of the URL: it is
read at every new connection, so a rotated password is used without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


def resolve_url(url: str) -> str:
    """``url`` with ``~`` expanded in a SQLite path (the parent folder is created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(os.path.expanduser(parsed.database))
        path.parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(database=str(path)).render_as_string(hide_password=False)
    return url


def create_db_engine(url: str, *, password_file: Path | None = None) -> Engine:
    """An engine for ``url`` with the pragmas and transaction mode this store relies on;
    ``password_file`` (PostgreSQL): where the password is read for each new connection."""
    resolved = resolve_url(url)
    if make_url(resolved).get_backend_name() != "sqlite":
        engine = create_engine(resolved, pool_pre_ping=True)
        if password_file is not None:
            _password_from(engine, Path(password_file))
        return engine
    if password_file is not None:
        raise ValueError("database_password_file is for PostgreSQL; a SQLite URL has no password")
    engine = create_engine(resolved, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _password_from(engine: Engine, path: Path) -> None:
    """Give every new connection of ``engine`` the password in ``path`` (trailing newline dropped)."""

    @event.listens_for(engine, "do_connect")
    def _with_password(dialect, conn_rec, cargs, cparams) -> None:  # type: ignore[no-untyped-def]
        try:
            cparams["password"] = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise OSError(f"feedback database password file {path}: {exc.strerror}") from exc
