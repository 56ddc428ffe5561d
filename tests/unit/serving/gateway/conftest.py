"""Shared helpers of the gateway unit tests: request contexts built like the request path builds them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest

from serving.engine.protocol import GenerateRequest, SamplingOptions
from serving.core.context import RequestContext
from serving.gateway.metrics import GatewayMetrics

_ids = itertools.count(1)


def make_ctx(
    *,
    headers: dict[str, str] | None = None,
    messages: list[str] | None = None,
    prompt: str | None = None,
    max_tokens: int | None = 16,
    n: int = 1,
    key_id: str | None = None,
    tier: str | None = None,
    body: Any = None,
) -> RequestContext:
    """A RequestContext with an engine request (chat by default)."""
    if prompt is None and messages is None:
        messages = ["hello there"]
    generate = GenerateRequest(
        request_id=f"req-{next(_ids)}",
        sampling=SamplingOptions(max_tokens=max_tokens, n=n),
        prompt=prompt,
        messages=tuple({"role": "user", "content": m} for m in messages) if messages is not None else None,
    )
    return RequestContext(
        request_id="client-chosen-id",  # the client's x-request-id: not unique
        response_id=generate.request_id,
        route="/v1/chat/completions" if messages is not None else "/v1/completions",
        model="fake-model",
        headers=headers or {},
        body=body,
        generate=generate,
        key_id=key_id,
        tier=tier,
    )


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics("fake-model")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx_factory():
    """``make_ctx`` as a fixture."""
    return make_ctx


class HangingClient:
    """Drives an ASGI app like a client that sends one body chunk and then nothing, forever.

    ``receive`` yields the first chunk with ``more_body=True``; every later call awaits an
    event that never fires. ``receive_calls`` counts the calls, ``sent`` the app's messages.
    """

    def __init__(self, first_chunk: bytes = b'{"model": "fake-model", ') -> None:
        self.first_chunk = first_chunk
        self.receive_calls = 0
        self.sent: list[dict[str, Any]] = []
        self.never = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        if self.receive_calls == 1:
            return {"type": "http.request", "body": self.first_chunk, "more_body": True}
        await self.never.wait()  # the rest of the body never comes
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def call(
        self,
        app: Any,
        path: str = "/v1/chat/completions",
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        root_path: str = "",
        timeout_s: float = 5.0,
    ) -> float:
        """Run one request through ``app``; return how long the app took to answer."""
        raw = [(b"host", b"test"), (b"content-type", b"application/json")]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": root_path,
            "query_string": b"",
            "headers": raw,
            "server": ("test", 80),
            "client": ("127.0.0.1", 40000),
        }
        start = time.monotonic()
        await asyncio.wait_for(app(scope, self.receive, self.send), timeout_s)
        return time.monotonic() - start

    @property
    def status(self) -> int:
        """The response status the app sent."""
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    def json(self) -> Any:
        """The response body, parsed."""
        return json.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))


@pytest.fixture
def hanging_client() -> HangingClient:
    """A client whose request body never finishes (see ``HangingClient``)."""
    return HangingClient()
