"""The body size middleware at the ASGI level: declared and streamed sizes, replay, pass-through."""

from __future__ import annotations

import json

from serving.gateway.hygiene.body_limit import BodySizeLimitMiddleware


class Recorder:
    """An ASGI app that reads its whole body and remembers it."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.body = b"".join(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def run(middleware, scope, messages):
    sent = []
    queue = list(messages)

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


def scope(method="POST", length=None):
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    return {"type": "http", "method": method, "path": "/v1/chat/completions", "headers": headers}


async def test_declared_length_over_limit_is_refused_unread():
    app = Recorder()
    rejected = []
    sent = await run(
        BodySizeLimitMiddleware(app, max_body_bytes=10, on_reject=lambda: rejected.append(1)), scope(length=11), []
    )
    assert sent[0]["status"] == 413 and not app.called and rejected == [1]
    assert json.loads(sent[1]["body"])["error"]["type"] == "invalid_request_error"


async def test_streamed_body_over_limit_is_refused():
    app = Recorder()
    chunks = [{"type": "http.request", "body": b"12345", "more_body": True}] * 3
    sent = await run(BodySizeLimitMiddleware(app, max_body_bytes=10), scope(), chunks)
    assert sent[0]["status"] == 413 and not app.called


async def test_body_within_limit_is_replayed_whole():
    app = Recorder()
    chunks = [
        {"type": "http.request", "body": b"12345", "more_body": True},
        {"type": "http.request", "body": b"67890", "more_body": False},
    ]
    sent = await run(BodySizeLimitMiddleware(app, max_body_bytes=10), scope(length=10), chunks)
    assert sent[0]["status"] == 200 and app.body == b"1234567890"


async def test_get_passes_through():
    app = Recorder()
    sent = await run(BodySizeLimitMiddleware(app, max_body_bytes=0), scope(method="GET"), [])
    assert sent[0]["status"] == 200 and app.body == b""
