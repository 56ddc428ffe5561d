"""The feedback database schema (SQLAlchemy 2). Migrations in ``migrations/`` create it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, SmallInteger, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the feedback tables."""


class ResponseRow(Base):
    """Metadata of one response we returned (never its text)."""

    __tablename__ = "responses"

    response_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean)
    latency_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    moderation: Mapped[str | None] = mapped_column(String(32))
    key_id: Mapped[str | None] = mapped_column(String(64))


class FeedbackRow(Base):
    """One user's rating of one response (at most one per response)."""

    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.response_id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    thumbs: Mapped[str | None] = mapped_column(String(4))
    score: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(JSON)
    key_id: Mapped[str | None] = mapped_column(String(64))


class ConversationRow(Base):
    """The (redacted) conversation of a response; only when the deployment opted in."""

    __tablename__ = "conversations"

    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.response_id", ondelete="CASCADE"), primary_key=True
    )
    messages: Mapped[list | None] = mapped_column(JSON)
    prompt: Mapped[str | None] = mapped_column(Text)
    completions: Mapped[list] = mapped_column(JSON)
