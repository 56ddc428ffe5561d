"""The error handlers: whatever a client sends, the error response itself encodes."""

from __future__ import annotations

import json

from tests.unit.apps import build_app
from serving.config.settings import Settings
from serving.engine.fake import FakeEngine


async def asgi_get(app, path: str) -> tuple[int, bytes]:
    """One GET straight through ASGI (a decoded path can hold what an HTTP client cannot send)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode("utf-8", "surrogatepass"), "query_string": b"", "headers": [],
        "server": ("test", 80), "client": ("client", 1), "root_path": "",
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_an_echoed_lone_surrogate_does_not_turn_a_404_into_a_500() -> None:
    status, body = await asgi_get(build_app(Settings(), FakeEngine()), "/v1/models/x\ud800y")
    assert status == 404
    error = json.loads(body)["error"]
    assert error["code"] == "model_not_found" and "x\ufffdy" in error["message"]


import httpx
import pytest


@pytest.mark.parametrize(
    "body,content_type,fragment",
    [
        (b'{"model": "\xff\xfe"}', "application/json", "could not parse the JSON"),  # not UTF-8
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"model": "m", "messages": []}', "text/plain", "Content-Type: application/json"),
        (b'{"model": "m", "messages": []}', None, "Content-Type: application/json"),
    ],
)
async def test_bodies_that_are_not_a_json_object_say_so(body: bytes, content_type: str | None, fragment: str) -> None:
    app = build_app(Settings(), FakeEngine())
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and fragment in error["message"], error
