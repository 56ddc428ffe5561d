"""User feedback on responses, stored with request metadata (SQLite or PostgreSQL), and its export."""

from serving.config.feedback import FeedbackSettings

__all__ = ["FeedbackSettings"]
