"""Structured request logs: one JSON line per request, no text, configurable format."""

from __future__ import annotations

import inspect
import io
import json
import logging

import pytest

from serving.config.settings import LoggingSettings
from serving.observability.logging import (
    REQUEST_LOGGER,
    JsonFormatter,
    KeyValueFormatter,
    configure_logging,
    log_request,
)

REQUEST = dict(
    request_id="req-123",
    model="tiny",
    route="/v1/chat/completions",
    status_code=200,
    outcome="ok",
    latency_s=0.123456,
    ttft_s=0.0123,
    prompt_tokens=11,
    completion_tokens=7,
    key_id="k-abc",
    finish_reason="stop",
)


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    """The request logger with a JSON handler writing into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.observability.requests")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, buffer


def test_one_request_is_one_json_line_with_every_field(captured) -> None:
    logger, buffer = captured
    log_request(logger, **REQUEST)
    (line,) = buffer.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "INFO" and record["message"] == "request" and record["event"] == "request"
    assert record["ts"].endswith("+00:00")
    for key in ("request_id", "model", "route", "status_code", "outcome", "prompt_tokens", "completion_tokens", "key_id", "finish_reason"):
        assert record[key] == REQUEST[key]
    assert record["latency_s"] == 0.1235 and record["ttft_s"] == 0.0123


def test_server_errors_log_at_warning_and_missing_ttft_is_null(captured) -> None:
    logger, buffer = captured
    log_request(logger, **{**REQUEST, "status_code": 503, "outcome": "server_error", "ttft_s": None})
    record = json.loads(buffer.getvalue())
    assert record["level"] == "WARNING" and record["ttft_s"] is None


def test_there_is_no_way_to_pass_text() -> None:
    params = set(inspect.signature(log_request).parameters)
    assert not params & {"prompt", "messages", "text", "completion", "content", "api_key", "extra"}
    with pytest.raises(TypeError):
        log_request(logging.getLogger("x"), **REQUEST, prompt="secret")  # type: ignore[call-arg]


def test_overlong_ids_are_cut(captured) -> None:
    logger, buffer = captured
    log_request(logger, **{**REQUEST, "request_id": "r" * 500, "key_id": "k" * 500})
    record = json.loads(buffer.getvalue())
    assert len(record["request_id"]) == 128 and len(record["key_id"]) == 128


def test_exceptions_are_kept_in_the_json_line(captured) -> None:
    logger, buffer = captured
    try:
        raise RuntimeError("engine exploded")
    except RuntimeError:
        logger.exception("request failed")
    record = json.loads(buffer.getvalue())
    assert "RuntimeError: engine exploded" in record["exc"]


def test_configure_logging_installs_one_handler_in_the_chosen_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = configure_logging(LoggingSettings(level="INFO", json_logs=True))
    configure_logging(LoggingSettings(level="INFO", json_logs=True))
    assert len([h for h in root.handlers if getattr(h, "_serving_handler", False)]) == 1
    assert not root.propagate
    log_request(logging.getLogger(REQUEST_LOGGER), **REQUEST)
    assert json.loads(capsys.readouterr().err)["request_id"] == "req-123"

    configure_logging(LoggingSettings(level="WARNING", json_logs=False))
    log_request(logging.getLogger(REQUEST_LOGGER), **REQUEST)  # INFO: filtered out
    log_request(logging.getLogger(REQUEST_LOGGER), **{**REQUEST, "status_code": 500})
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "WARNING serving.requests request" in err and "request_id=req-123" in err and "status_code=500" in err
    (handler,) = [h for h in root.handlers if getattr(h, "_serving_handler", False)]
    assert isinstance(handler.formatter, KeyValueFormatter)
    root.removeHandler(handler)
    root.propagate = True


def _redacting_json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    from serving.privacy.log_filter import RedactingFilter

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, buffer


def test_json_exception_text_is_the_redacted_one() -> None:
    logger, buffer = _redacting_json_logger("test.observability.redacted.exc")
    try:
        raise ValueError("comment from alice@example.com with card 4111 1111 1111 1111")
    except ValueError:
        logger.exception("write failed")
    record = json.loads(buffer.getvalue())
    assert "alice@example.com" not in record["exc"] and "4111 1111 1111 1111" not in record["exc"]
    assert "[REDACTED:EMAIL]" in record["exc"] and "ValueError" in record["exc"]


def test_json_structured_fields_are_redacted() -> None:
    logger, buffer = _redacting_json_logger("test.observability.redacted.fields")
    logger.info("event", extra={"serving_fields": {"detail": "from bob@example.com", "count": 3}})
    record = json.loads(buffer.getvalue())
    assert record["detail"] == "from [REDACTED:EMAIL]" and record["count"] == 3
