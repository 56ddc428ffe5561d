"""The error tree and the one OpenAI error body builder."""

import json

from serving.errors import (
    ContextLengthExceededError,
    EngineError,
    InvalidRequestError,
    OverloadedError,
    RateLimitError,
    ServiceUnavailableError,
    error_body,
    error_body_for,
)


def test_error_body_shape() -> None:
    assert error_body("m", error_type="t", param="p", code="c") == {
        "error": {"message": "m", "type": "t", "param": "p", "code": "c"}
    }


def test_client_errors_show_message_param_and_code() -> None:
    body = error_body_for(ContextLengthExceededError("too long", param="messages"))
    assert body["error"] == {
        "message": "too long",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }


def test_server_errors_never_echo_internals() -> None:
    body = error_body_for(EngineError("CUDA OOM at /secret/path"))
    assert "secret" not in body["error"]["message"]
    assert body["error"]["type"] == "server_error"
    assert "secret" not in error_body_for(ServiceUnavailableError("engine pid 7 died"))["error"]["message"]


def test_load_errors_are_429_not_503() -> None:
    assert OverloadedError("full").status_code == 429
    assert issubclass(OverloadedError, RateLimitError)
    assert OverloadedError("full", headers={"Retry-After": "1"}).headers == {"Retry-After": "1"}


def test_client_text_with_lone_surrogates_cannot_break_the_error_body() -> None:
    body = error_body_for(InvalidRequestError("No model `a\ud800b` here.", param="tags.\udfff"))
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # what the JSON response does: must not raise
    assert body["error"]["message"] == "No model `a\ufffdb` here." and body["error"]["param"] == "tags.\ufffd"
    assert error_body("fine 😀 text", error_type="t")["error"]["message"] == "fine 😀 text"
