"""How a request ended is mapped once, and metrics and the request log agree with what the
client received: the client leaving (499 ``aborted``), the engine aborting (500
``engine_aborted``, an SSE error on a stream) and the deadline (504 ``timeout``)."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.observability.backends import PrometheusClientBackend
from serving.observability.metrics import RequestMetrics
from tests.unit.apps import build_app

ROUTE = "/v1/chat/completions"


def chat(stream: bool, **extra) -> dict:
    return {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}


def app_with(engine: FakeEngine, **http):
    backend = PrometheusClientBackend()
    metrics = RequestMetrics(engine.info.id, backend=backend)
    settings = load_settings({"http": http} if http else {})
    return build_app(settings, engine, metrics=metrics), backend


def sample(backend: PrometheusClientBackend, name: str, **labels) -> float:
    value = backend.registry.get_sample_value(name, {"model": "fake-model", "route": ROUTE, **labels})
    return value or 0.0


def request_lines(caplog) -> list[dict]:
    return [r.serving_fields for r in caplog.records if r.name == "serving.requests"]


@pytest.mark.parametrize("stream", [True, False])
async def test_an_engine_abort_is_a_server_error_not_a_client_disconnect(caplog, stream) -> None:
    engine = FakeEngine(FakeEngineConfig(abort_after_tokens=2))
    app, backend = app_with(engine)
    caplog.set_level(logging.INFO, logger="serving.requests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post(ROUTE, json=chat(stream))
    if stream:
        assert response.status_code == 200  # the stream had started
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["type"] == "server_error" and error["code"] == "engine_aborted"
    else:
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "engine_aborted"
    assert sample(backend, "ray_serving_requests_total", status_class="5xx", outcome="engine_aborted") == 1
    assert sample(backend, "ray_serving_client_disconnects_total") == 0
    (line,) = request_lines(caplog)
    assert line["status_code"] == 500 and line["outcome"] == "engine_aborted"


async def test_a_client_that_leaves_mid_stream_is_recorded_as_aborted(caplog) -> None:
    engine = FakeEngine(FakeEngineConfig(reply=("word",) * 200, token_delay_s=0.01, max_model_len=4096))
    app, backend = app_with(engine)
    caplog.set_level(logging.INFO, logger="serving.requests")
    received = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if not sent:
            sent.append({})
            body = json.dumps(chat(True)).encode()
            return {"type": "http.request", "body": body, "more_body": False}
        await received.wait()  # the client goes away after its first chunk
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            received.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": ROUTE, "raw_path": ROUTE.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1), "server": ("test", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    for _ in range(100):  # the end of the request is recorded by its own (shielded) task
        if request_lines(caplog):
            break
        await asyncio.sleep(0.01)
    (line,) = request_lines(caplog)
    assert line["status_code"] == 499 and line["outcome"] == "aborted"
    assert sample(backend, "ray_serving_requests_total", status_class="4xx", outcome="aborted") == 1
    assert sample(backend, "ray_serving_client_disconnects_total") == 1
    assert engine.running == set()  # the engine request did not run on


@pytest.mark.parametrize("stream", [True, False])
async def test_the_deadline_is_a_timeout(caplog, stream) -> None:
    engine = FakeEngine(FakeEngineConfig(reply=("word",) * 100, token_delay_s=0.05, max_model_len=4096))
    app, backend = app_with(engine, request_timeout_s=0.3)
    caplog.set_level(logging.INFO, logger="serving.requests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post(ROUTE, json=chat(stream))
    if stream:
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert json.loads(events[-2])["error"]["code"] == "timeout"
    else:
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"
    assert sample(backend, "ray_serving_requests_total", status_class="5xx", outcome="timeout") == 1
    assert sample(backend, "ray_serving_client_disconnects_total") == 0
    (line,) = request_lines(caplog)
    assert line["status_code"] == 504 and line["outcome"] == "timeout"
