"""A logging filter that redacts PII and secrets in every record it sees.

The code never logs prompt text or keys on purpose; this filter is the safety net for
what third-party code might log (exception messages that quote input, for example).
"""

from __future__ import annotations

import logging

from serving.privacy.pii import redact


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and exception text) with PII redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
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
