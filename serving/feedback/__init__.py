"""User feedback on responses, stored with request metadata (SQLite or PostgreSQL), and its export."""

from serving.feedback.settings import FeedbackSettings

__all__ = ["FeedbackSettings"]
