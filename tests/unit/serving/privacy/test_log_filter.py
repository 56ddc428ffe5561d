"""The redacting log filter rewrites records that carry PII or secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from serving.privacy.log_filter import RedactingFilter, install_redacting_filter, install_redacting_record_factory


def make_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_message_and_args_are_redacted() -> None:
    logger, stream = make_logger("test.redact.args")
    logger.info("user %s sent key %s", "alice@example.com", "sk-abcdefghijklmnopqrstuv")
    out = stream.getvalue()
    assert "alice@example.com" not in out and "sk-abcdefghijklmnopqrstuv" not in out
    assert "[REDACTED:EMAIL]" in out and "[REDACTED:SECRET]" in out


def test_exception_text_is_redacted() -> None:
    logger, stream = make_logger("test.redact.exc")
    try:
        raise ValueError("bad card 4111 1111 1111 1111")
    except ValueError:
        logger.exception("failed")
    out = stream.getvalue()
    assert "4111 1111 1111 1111" not in out and "[REDACTED:CARD]" in out


def test_clean_records_are_unchanged() -> None:
    logger, stream = make_logger("test.redact.clean")
    logger.info("request %s took %d ms", "req-1", 12)
    assert stream.getvalue() == "request req-1 took 12 ms\n"


def test_install_is_idempotent() -> None:
    logger = logging.getLogger("test.redact.install")
    logger.handlers = [logging.StreamHandler(io.StringIO())]
    install_redacting_filter(logger)
    install_redacting_filter(logger)
    assert sum(isinstance(f, RedactingFilter) for f in logger.handlers[0].filters) == 1


def test_record_factory_redacts_every_logger_whatever_its_handlers() -> None:
    previous = logging.getLogRecordFactory()
    try:
        install_redacting_record_factory()
        install_redacting_record_factory()  # idempotent: one wrapper
        stream = io.StringIO()
        logger = logging.getLogger("test.redact.factory.child")
        logger.handlers = [logging.StreamHandler(stream)]  # a handler without any filter
        logger.propagate = False
        logger.warning("token %s", "Bearer abcdefghijklmnopqrstuvwxyz012345")
        assert stream.getvalue() == "token [REDACTED:SECRET]\n"
    finally:
        logging.setLogRecordFactory(previous)


def test_extra_fields_are_redacted_without_touching_the_callers_values() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(user)s %(detail)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redact.extra")
    logger.handlers = [handler]
    logger.propagate = False
    detail = {"comment": "mail carol@example.com", "n": 2}
    logger.warning("event", extra={"user": "dave@example.com", "detail": detail})
    out = stream.getvalue()
    assert "dave@example.com" not in out and "carol@example.com" not in out
    assert out.count("[REDACTED:EMAIL]") == 2 and "'n': 2" in out
    assert detail["comment"] == "mail carol@example.com"  # the caller's mapping is copied, not rewritten


@pytest.fixture
def clean_logging():
    """Restore the record factory and the handlers' filters of the loggers install_redaction touches."""
    previous = logging.getLogRecordFactory()
    loggers = [logging.getLogger(name) for name in ("", "serving", "ray", "ray.serve")]
    saved = [(lg, lg.handlers[:], [list(h.filters) for h in lg.handlers]) for lg in loggers]
    yield
    logging.setLogRecordFactory(previous)
    for lg, handlers, filters in saved:
        lg.handlers[:] = handlers
        for h, f in zip(handlers, filters):
            h.filters[:] = f


def test_install_redaction_is_idempotent_and_covers_exceptions_and_extras(clean_logging) -> None:
    from serving.observability.logging import JsonFormatter
    from serving.privacy import PrivacySettings, install_redaction

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    serving_logger = logging.getLogger("serving")
    serving_logger.handlers[:] = [handler]
    assert install_redaction(PrivacySettings()) is True
    factory = logging.getLogRecordFactory()
    assert install_redaction(PrivacySettings()) is True
    assert logging.getLogRecordFactory() is factory  # no second wrapper
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    try:
        raise RuntimeError("(sqlite3.IntegrityError) [parameters: ('erin@example.com',)]")
    except RuntimeError:
        logging.getLogger("serving.feedback.store").exception(
            "write failed", extra={"serving_fields": {"comment": "frank@example.com"}}
        )
    out = stream.getvalue()
    assert "erin@example.com" not in out and "frank@example.com" not in out
    assert json.loads(out)["comment"] == "[REDACTED:EMAIL]" and "[REDACTED:EMAIL]" in json.loads(out)["exc"]


def test_install_redaction_respects_the_switch(clean_logging) -> None:
    from serving.privacy import PrivacySettings, install_redaction

    factory = logging.getLogRecordFactory()
    assert install_redaction(PrivacySettings(redact_logs=False)) is False
    assert logging.getLogRecordFactory() is factory
