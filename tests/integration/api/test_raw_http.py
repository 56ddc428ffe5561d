"""Raw HTTP against the real stack: SSE framing, request ids, and hostile input."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Stack


@pytest.fixture
def http(stack: Stack):
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        yield client


def chat(stack: Stack, **extra):
    return {"model": stack.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, **extra}


def sse_events(text: str) -> list[str]:
    events = [block for block in text.split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: ") :] for e in events]


def test_sse_framing_is_openai_exact(http: httpx.Client, stack: Stack) -> None:
    response = http.post("/v1/chat/completions", json=chat(stack, stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "usage" not in chunks[0]  # only with stream_options.include_usage
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_request_id_echoed_and_response_ids_unique(http: httpx.Client, stack: Stack) -> None:
    first = http.post("/v1/chat/completions", json=chat(stack), headers={"x-request-id": "my-trace-42"})
    second = http.post("/v1/chat/completions", json=chat(stack), headers={"x-request-id": "my-trace-42"})
    assert first.headers["x-request-id"] == "my-trace-42"
    assert first.json()["id"] != second.json()["id"]
    assert http.post("/v1/chat/completions", json=chat(stack)).headers.get("x-request-id")


BAD_BODIES = [
    ("not json", b"{nope", 400, None),
    ("array body", b"[1, 2]", 400, None),
    ("messages wrong type", {"messages": "hello"}, 400, "messages"),
    ("empty messages", {"messages": []}, 400, "messages"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role"),
    ("temperature too high", {"temperature": 7}, 400, "temperature"),
    ("negative max_tokens", {"max_tokens": -1}, 400, "max_tokens"),
    ("n absurd", {"n": 100000}, 400, "n"),
    ("too many stops", {"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("top_logprobs too high", {"logprobs": True, "top_logprobs": 99}, 400, "top_logprobs"),
    ("tools unsupported", {"tools": [{"type": "function"}]}, 400, "tools"),
    ("unknown field", {"frobnicate": 1}, 400, "frobnicate"),
    ("image part", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, None),
    ("max_tokens over context", {"max_tokens": 10**9}, 400, "max_tokens"),
]


@pytest.mark.parametrize("name,patch,status,param", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_gets_openai_4xx(http: httpx.Client, stack: Stack, name, patch, status, param) -> None:
    if isinstance(patch, bytes):
        response = http.post("/v1/chat/completions", content=patch, headers={"content-type": "application/json"})
    else:
        response = http.post("/v1/chat/completions", json={**chat(stack), **patch})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param


def test_unknown_model_is_404(http: httpx.Client, stack: Stack) -> None:
    response = http.post("/v1/chat/completions", json={**chat(stack), "model": "gpt-9"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_prompt_longer_than_context_is_400(http: httpx.Client, stack: Stack) -> None:
    long_prompt = "word " * (stack.settings.model.engine.max_model_len + 50)
    response = http.post("/v1/completions", json={"model": stack.model, "prompt": long_prompt, "max_tokens": 1})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_stream_errors_before_start_are_plain_http_errors(http: httpx.Client, stack: Stack) -> None:
    response = http.post("/v1/chat/completions", json={**chat(stack), "stream": True, "max_tokens": 10**9})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")


def test_server_keeps_serving_after_abuse(http: httpx.Client, stack: Stack) -> None:
    for body in (b"\x00\xff", b"{" * 10000, b'{"model": 1}', b"null"):
        assert http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"}).status_code == 400
    assert http.get("/v1/nope").status_code == 404
    assert http.delete("/v1/chat/completions").status_code == 405
    ok = http.post("/v1/chat/completions", json=chat(stack))
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] is not None
    assert http.get("/health").status_code == 200
    assert http.get("/ready").status_code == 200
