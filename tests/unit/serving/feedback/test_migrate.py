"""Migrations: the schema they build matches the models; idempotent; safe when replicas race."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from serving.feedback.db import create_db_engine
from serving.feedback.migrate import main, upgrade
from serving.feedback.models import Base


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/f.db")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_upgrade_is_idempotent_and_records_the_revision(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/f.db")
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
    assert {"responses", "feedback", "conversations"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_replicas_starting_together_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=main, args=(["upgrade", "--database-url", url],)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    engine = create_db_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()


def test_cli_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    assert main(["upgrade", "--database-url", url]) == 0
    assert "feedback" in inspect(create_db_engine(url)).get_table_names()


def test_home_in_sqlite_path_is_expanded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    engine = create_db_engine("sqlite:///~/nested/dir/f.db")
    upgrade(engine)
    assert (tmp_path / "nested" / "dir" / "f.db").is_file()
    engine.dispose()
