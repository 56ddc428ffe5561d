"""Alembic environment: always run on a connection handed over by ``serving.feedback.migrate``.

No alembic.ini is needed: the config is built in code, so migrations run from an
installed package. Authoring a new revision (developers)::

    python -m serving.feedback.migrate revision -m "add column" --autogenerate
"""

from __future__ import annotations

from alembic import context

from serving.feedback.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through serving.feedback.migrate (it passes the connection)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE via copy-and-move
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
