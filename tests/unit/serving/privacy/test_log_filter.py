"""The redacting log filter rewrites records that carry PII or secrets."""

from __future__ import annotations

import io
import logging

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
