"""Redacting PII and secrets in log records: a handler filter, or every record of the process.

The code never logs prompt text or keys on purpose; this is the safety net for what
third-party code might log (exception messages that quote input, for example).
``install_redacting_record_factory`` covers every logger of the process whatever its
handlers (our ``serving`` tree does not propagate to the root logger, Ray's loggers have
their own handlers); ``RedactingFilter`` is the same rewrite for one handler.
"""

from __future__ import annotations

import logging

from serving.privacy.pii import redact


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with its message (and exception text) PII-redacted, in place."""
    RedactingFilter().filter(record)
    return record


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and exception text) with PII redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_pii_redacted", False):
            return True
        record._pii_redacted = True  # type: ignore[attr-defined]
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave the record alone
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            formatter = logging.Formatter()
            record.exc_text = formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redacting_filter(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one ``RedactingFilter`` to every handler of ``logger`` (default: the root logger).

    Filters on handlers (not loggers) also see records propagated from child loggers.
    Idempotent: a handler that already has one is left as it is.
    """
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt


_installed_factory: list[object] = []


def install_redacting_record_factory() -> None:
    """Redact every log record of this process when it is created (idempotent)."""
    current = logging.getLogRecordFactory()
    if current in _installed_factory:
        return

    def factory(*args, **kwargs) -> logging.LogRecord:  # type: ignore[no-untyped-def]
        return redact_record(current(*args, **kwargs))

    _installed_factory.append(factory)
    logging.setLogRecordFactory(factory)
