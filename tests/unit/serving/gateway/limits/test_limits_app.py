"""Per-key limits in the real app factory (fake engine at the seam): 503 when the store is down,
reservations from the model's output cap, and settlement when the client goes away mid-stream."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.unit.apps import build_app, gateway_of
from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import SamplingDefaults
from serving.gateway.admission.policy import AdmissionPolicy
from serving.gateway.auth.keys import hash_key, key_id_of
from serving.gateway.limits.buckets import LimiterCore
from serving.gateway.limits.store import LimiterUnavailable, LocalLimiter

KEY = "sk-limited-0123456789"
KEY_ID = key_id_of(hash_key(KEY))
TPM = 100_000


def app_for(tmp_path, engine: FakeEngine, limiter=None, **limits):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys: [{{key: {KEY}, tier: free}}]")
    tiers = {"default": {}, "free": {"tpm": TPM, "max_concurrent": 2}}
    settings = load_settings({
        "gateway": {"auth": {"enabled": True, "keys_file": str(keys)}, "limits": {"tiers": tiers, **limits}},
        # The limiter's accounting is what these tests count: no output hold-back between the
        # engine and the client (moderation's own tests cover that with the limiter on).
        "moderation": {"enabled": False},
    })
    app = build_app(settings, engine, overrides={"limiter": limiter})
    built = gateway_of(app)
    return app, built


def chat(**body) -> dict:
    payload = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], **body}
    return {"url": "/v1/chat/completions", "json": payload, "headers": {"authorization": f"Bearer {KEY}"}}


class _Down:
    name = "down"

    async def acquire(self, *a, **kw):
        raise LimiterUnavailable("connection refused")

    async def release(self, *a, **kw):
        raise LimiterUnavailable("connection refused")


async def test_limiter_down_is_a_503_in_openai_format_with_retry_after(tmp_path):
    app, built = app_for(tmp_path, FakeEngine(), limiter=_Down())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        r = await c.post(**chat(max_tokens=4))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "limiter_unavailable" and error["type"] == "server_error"
    assert "refused" not in r.text
    assert built.metrics.count("rate_limit", "failed_closed", "store_unavailable") == 1


async def test_request_without_max_tokens_reserves_the_models_output_cap(tmp_path):
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096, sampling_defaults=SamplingDefaults(max_tokens=50)))
    frozen = LocalLimiter(core=LimiterCore(clock=lambda: 1000.0))
    app, _ = app_for(tmp_path, engine, limiter=frozen)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        r = await c.post(**chat())
    assert r.status_code == 200
    # "hi": the engine's exact count (1 word + 3 per message), plus the model's cap of 50 output tokens.
    assert r.headers["x-ratelimit-remaining-tokens"] == str(TPM - 4 - 50)
    usage = r.json()["usage"]
    level = frozen.core._keys[KEY_ID].tokens.level
    assert level == TPM - usage["prompt_tokens"] - usage["completion_tokens"]  # settled from real usage


class _NetworkLimiter(LocalLimiter):
    """The in-process store behind a network round trip (as the Ray and Redis stores are)."""

    async def release(self, *args, **kwargs) -> None:
        await asyncio.sleep(0.01)
        await super().release(*args, **kwargs)


async def _stream_then_disconnect(app, body: dict, *, after_chunks: int) -> int:
    """POST a streaming request, read ``after_chunks`` SSE chunks, then go away; the chunks' tokens."""
    enough = asyncio.Event()
    chunks: list[bytes] = []
    sent_request = False

    async def receive() -> dict:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await enough.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if len(chunks) >= after_chunks:
                enough.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "root_path": "", "query_string": b"", "server": ("test", 80), "client": ("127.0.0.1", 40000),
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                    (b"authorization", f"Bearer {KEY}".encode())],
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    await asyncio.sleep(0.1)  # a release that runs on in its own task lands
    events = [line for chunk in chunks for line in chunk.decode().splitlines() if line.startswith("data: {")]
    return len(events)


@pytest.fixture(params=["memory-over-network", "redis"])
async def network_limiter(request):
    """A store behind a round trip, on a frozen clock (nothing refills during the test)."""
    if request.param == "memory-over-network":
        limiter = _NetworkLimiter(core=LimiterCore(clock=lambda: 1000.0))
        limiter.in_flight = lambda key: asyncio.sleep(0, limiter.core.in_flight(key))
        yield limiter
        return
    from serving.gateway.limits.redis_store import RedisLimiter

    server = request.getfixturevalue("redis_server")
    limiter = RedisLimiter(server.url, prefix=f"abort-{uuid.uuid4().hex[:6]}", clock=lambda: 1000.0)
    yield limiter
    await limiter.close()


async def test_client_abort_settles_from_what_was_generated(tmp_path, network_limiter):
    reply = tuple(f" w{i}" for i in range(400))
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096, reply=reply, token_delay_s=0.005))
    app, built = app_for(tmp_path, engine, limiter=network_limiter)
    events = await _stream_then_disconnect(app, chat(stream=True, max_tokens=400)["json"], after_chunks=6)
    assert engine.running == set()  # the engine request was aborted
    # The concurrency slot came back at once, not after lease_s.
    assert await network_limiter.in_flight(KEY_ID) == 0
    admission = next(p for p in built.policies if isinstance(p, AdmissionPolicy))
    assert admission.controller.in_flight == 0  # the other policies' end-of-request work still ran
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        nxt = await c.post(**chat(max_tokens=1))
    prompt = 1 + 3  # the fake engine's count for "hi"
    charged = TPM - (prompt + 1) - int(nxt.headers["x-ratelimit-remaining-tokens"])  # the next request's reservation
    # Charged: the prompt and the tokens generated before the client left, not the 400 reserved.
    assert prompt + 1 <= charged <= prompt + events + 2
