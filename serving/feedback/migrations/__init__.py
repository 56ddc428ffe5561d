"""Alembic migrations of the feedback database (run by ``serving.feedback.migrate``)."""
