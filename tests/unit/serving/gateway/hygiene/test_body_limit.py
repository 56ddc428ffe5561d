"""The body size middleware at the ASGI level: declared and streamed sizes, replay, pass-through."""

from __future__ import annotations

import json

import pytest

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


# --- A body that never finishes: a deadline, and no waiting for bodies of unknown routes ---

GOOD = "sk-good-0123456789"
DEADLINE_S = 0.2


def gateway_app(tmp_path, **hygiene):
    """The real app factory with the gateway built from settings (auth on, a short body deadline)."""
    from tests.unit.apps import build_app, gateway_of
    from serving.config.settings import load_settings
    from serving.engine.fake import FakeEngine
    from serving.gateway.limits.store import LocalLimiter

    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys: [{{key: {GOOD}}}]")
    settings = load_settings({
        "gateway": {
            "auth": {"enabled": True, "keys_file": str(keys)},
            "hygiene": {"body_read_timeout_s": DEADLINE_S, **hygiene},
        }
    })
    engine = FakeEngine()
    app = build_app(settings, engine, overrides={"limiter": LocalLimiter()})
    built = gateway_of(app)
    return app, built


async def test_body_that_never_finishes_is_408_within_the_deadline(tmp_path, hanging_client):
    app, built = gateway_app(tmp_path)
    elapsed = await hanging_client.call(app, headers={"authorization": f"Bearer {GOOD}"})
    assert hanging_client.status == 408
    error = hanging_client.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "request_timeout"
    assert DEADLINE_S <= elapsed < DEADLINE_S + 0.5
    assert built.metrics.count("hygiene", "denied", "body_timeout") == 1


async def test_deadline_bounds_the_whole_body_not_each_chunk():
    """A client trickling a byte just under the deadline each time is still cut at the deadline."""
    import asyncio
    import time

    app = Recorder()

    async def receive():
        await asyncio.sleep(DEADLINE_S / 4)
        return {"type": "http.request", "body": b"x", "more_body": True}

    sent = []

    async def send(message):
        sent.append(message)

    middleware = BodySizeLimitMiddleware(app, max_body_bytes=10_000, body_read_timeout_s=DEADLINE_S)
    start = time.monotonic()
    await asyncio.wait_for(middleware(scope(), receive, send), 5)
    assert sent[0]["status"] == 408 and not app.called
    assert time.monotonic() - start < DEADLINE_S + 0.5


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/v1/not-a-route", 404, "unknown_url"),
        ("POST", "//v1/chat/completions", 404, "unknown_url"),
        ("PUT", "/v1/chat/completions", 405, "method_not_allowed"),
        ("POST", "/v1/models", 405, "method_not_allowed"),
    ],
)
async def test_unknown_route_or_method_is_refused_without_reading_the_body(
    tmp_path, hanging_client, method, path, status, code
):
    app, _ = gateway_app(tmp_path, body_read_timeout_s=60)  # the deadline must not be what answers
    elapsed = await hanging_client.call(
        app, path, method=method, headers={"authorization": f"Bearer {GOOD}"}, timeout_s=2
    )
    assert hanging_client.status == status and hanging_client.json()["error"]["code"] == code
    assert hanging_client.receive_calls <= 1  # never waited for the rest of the body
    assert elapsed < 1.0
