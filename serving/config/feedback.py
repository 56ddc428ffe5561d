"""Settings of the feedback section: where feedback and response metadata are stored."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt, model_validator
from sqlalchemy.engine import make_url

from serving.config.base import StrictModel

DEFAULT_DATABASE_URL = "sqlite:///~/.cache/llm-serving/feedback.sqlite3"


class FeedbackSettings(StrictModel):
    """User feedback on responses, joined to request metadata (no text unless opted in)."""

    enabled: bool = Field(True, description="Record response metadata and serve POST /v1/feedback.")
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        min_length=1,
        description="SQLAlchemy URL: a SQLite file (one node; WAL mode) or "
        "postgresql+psycopg://... (several nodes). '~' is expanded in SQLite paths.",
    )
    database_password_file: Path | None = Field(
        None,
        description="PostgreSQL only: a file holding the password (e.g. a mounted Secret), read at "
        "every new connection, so the URL carries none and a rotated password needs no restart.",
    )
    store_conversations: bool = Field(
        False,
        description="Also keep the conversation text of every response (PII-redacted), for export "
        "and fine-tuning. Off by default: only metadata is stored.",
    )
    flush_interval_s: PositiveFloat = Field(
        0.2, description="Response metadata is written in batches at least this often."
    )
    max_pending: PositiveInt = Field(
        10_000, description="Response records waiting to be written; beyond this they are dropped (counted)."
    )
    lookup_grace_s: float = Field(
        1.0, ge=0, description="How long POST /v1/feedback waits for a response record still in a write buffer."
    )
    response_retention_days: PositiveInt = Field(
        30, description="Response metadata without feedback is deleted after this many days."
    )
    max_comment_chars: PositiveInt = Field(4000, description="Longest feedback comment accepted.")
    max_tags: PositiveInt = Field(16, description="Most tags on one feedback.")

    @model_validator(mode="after")
    def _one_password_source(self) -> "FeedbackSettings":
        if self.database_password_file is not None:
            url = make_url(self.database_url)
            if url.get_backend_name() != "postgresql":
                raise ValueError("database_password_file needs a postgresql database_url")
            if url.password is not None:
                raise ValueError("database_password_file and a password in database_url: give one of them")
        return self
