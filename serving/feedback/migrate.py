"""Schema migrations with a programmatic Alembic config (works from an installed package).

``upgrade(engine)`` brings the database to the newest revision. It runs inside one
write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so
replicas starting together migrate once and the others wait, then see it done.

Command line (developers)::

    python -m serving.feedback.migrate upgrade --database-url sqlite:////tmp/f.db
    python -m serving.feedback.migrate current --database-url ...
    python -m serving.feedback.migrate revision -m "message" --autogenerate --database-url ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from serving.feedback.db import create_db_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: the key of PostgreSQL's advisory lock around migrations.
_PG_LOCK_KEY = 0x5E271_F33D


def alembic_config() -> Config:
    """The Alembic config of the feedback migrations (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (idempotent, concurrency-safe)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def main(argv: list[str] | None = None) -> int:
    """Developer CLI around Alembic commands."""
    parser = argparse.ArgumentParser(prog="python -m serving.feedback.migrate")
    parser.add_argument("command", choices=["upgrade", "current", "revision"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("-m", "--message", default="change")
    parser.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    engine = create_db_engine(args.database_url)
    if args.command == "upgrade":
        upgrade(engine)
        return 0
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        if args.command == "current":
            command.current(cfg, verbose=True)
        else:
            command.revision(cfg, message=args.message, autogenerate=args.autogenerate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
