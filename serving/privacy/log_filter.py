"""Redacting PII and secrets in log records: a handler filter, or every record of the process.

The code never logs prompt text or keys on purpose; this is the safety net for what
third-party code might log (exception messages that quote input, for example).
``install_redaction(privacy)`` is what every replica calls at start.
``install_redacting_record_factory`` covers every logger of the process whatever its
handlers (our ``serving`` tree does not propagate to the root logger, Ray's loggers have
their own handlers); ``RedactingFilter`` is the same rewrite for one handler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from serving.privacy.pii import redact

if TYPE_CHECKING:
    from serving.config.privacy import PrivacySettings


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with its message, exception and stack text PII-redacted, in place.

    The record factory's part: ``extra`` attributes are set on the record only after the
    factory returns, so they are left to ``RedactingFilter`` on the handlers.
    """
    if not getattr(record, "_pii_redacted", False):
        record._pii_redacted = True  # type: ignore[attr-defined]
        _redact_text(record)
    return record


# The attributes every LogRecord has; any other attribute came from a caller's ``extra``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_pii_redacted",
    "_pii_extras_redacted",
}
_MAX_DEPTH = 4


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, exception and stack text and ``extra`` values with PII redacted.

    A record factory sees the message and exception (``install_redacting_record_factory``),
    but ``extra`` attributes are set on the record after the factory returns: only a
    handler filter sees them, so the two parts are marked done separately.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        if not getattr(record, "_pii_extras_redacted", False):
            record._pii_extras_redacted = True  # type: ignore[attr-defined]
            for key in [key for key in record.__dict__ if key not in _STANDARD_ATTRS]:
                record.__dict__[key] = _redact_value(record.__dict__[key], _MAX_DEPTH)
        return True


def _redact_text(record: logging.LogRecord) -> None:
    """Redact the message, the exception text (formatted once, here) and the stack text."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave the message alone
        message = None
    if message is not None:
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _redact_value(value: object, depth: int) -> object:
    """``value`` with every string in it redacted (mappings and sequences copied, not changed)."""
    if isinstance(value, str):
        return redact(value)
    if depth <= 0:
        return value
    if isinstance(value, dict):
        return {k: _redact_value(v, depth - 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_redact_value(v, depth - 1) for v in value)  # type: ignore[call-arg, union-attr]
    return value


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


def _factory_redacts() -> bool:
    """Whether the current record factory (or one it wraps) is ours: a probe record comes out marked."""
    probe = logging.getLogRecordFactory()("serving.privacy.probe", logging.DEBUG, "", 0, "", None, None)
    return bool(getattr(probe, "_pii_redacted", False))


def install_redacting_record_factory() -> None:
    """Redact every log record of this process when it is created (idempotent).

    A factory installed later by someone else that wraps ours still counts as installed.
    """
    if _factory_redacts():
        return
    current = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:  # type: ignore[no-untyped-def]
        return redact_record(current(*args, **kwargs))

    logging.setLogRecordFactory(factory)


# Loggers whose handlers also get a RedactingFilter: the root, our tree, Ray's and Serve's
# (their handlers format ``extra`` fields, which the record factory cannot see).
REDACTED_LOGGERS = ("", "serving", "ray", "ray.serve")


def install_redaction(privacy: "PrivacySettings") -> bool:
    """Redact PII and secrets in every log record of this process, if ``privacy.redact_logs``.

    The one call every replica makes at start (after configuring logging): a record
    factory (messages and exception text of every logger) plus a ``RedactingFilter`` on
    the handlers of ``REDACTED_LOGGERS`` (``extra`` fields). Idempotent; returns whether
    redaction is on.
    """
    if not privacy.redact_logs:
        return False
    install_redacting_record_factory()
    for name in REDACTED_LOGGERS:
        install_redacting_filter(logging.getLogger(name))
    return True
