"""The routes that generate nothing (embeddings, moderations, feedback) pass the gateway's policies.

The app is the one a replica serves (``build_openai_app`` over ``serving.extensions.FEATURES``),
over the fake engine; the embeddings deployment is a stand-in handle at the Serve seam.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving.config.settings import load_settings
from serving.embeddings.deployment import EmbedResult
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.feedback.store import FeedbackStore
from tests.unit.apps import build_app
from tests.unit.serving.feedback.conftest import record

RPM = 3
KEYS = {route: f"sk-{route}-0123456789abcdef" for route in ("embeddings", "moderations", "feedback", "chat")}


class _Method:
    def __init__(self, fn) -> None:
        self.remote = fn


class EmbeddingsHandle:
    """Stands in for the embeddings deployment's Serve handle; ``gate`` holds calls until set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0
        self.embed = _Method(self._embed)

    async def _embed(self, texts: list[str]) -> EmbedResult:
        self.calls += 1
        await self.gate.wait()
        return EmbedResult(np.zeros((len(texts), 384), dtype=np.float32), [1] * len(texts), 1)


def _settings(tmp_path: Path, tiers: dict, admission: dict | None = None):
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n" + "".join(f"  - {{key: {k}, tier: limited}}\n" for k in KEYS.values()))
    return load_settings({
        "gateway": {
            "auth": {"enabled": True, "keys_file": str(keys)},
            "limits": {"tiers": {"default": {}, "limited": tiers}, "store": "local"},
            "admission": admission or {},
        },
        "feedback": {"database_url": f"sqlite:///{tmp_path}/feedback.sqlite3", "lookup_grace_s": 0},
        "embeddings": {"enabled": True},
    })


@pytest.fixture
def make_app(tmp_path: Path):
    def make(tiers: dict, *, admission: dict | None = None, engine: FakeEngine | None = None):
        handle = EmbeddingsHandle()
        app = build_app(_settings(tmp_path, tiers, admission), engine or FakeEngine(), handles={"embeddings": handle})
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        return client, handle

    return make


def auth(route: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[route]}"}


def _embeddings(_: int) -> dict:
    return {"url": "/v1/embeddings", "json": {"model": "all-MiniLM-L6-v2", "input": "hi"}, "headers": auth("embeddings")}


def _moderations(_: int) -> dict:
    return {"url": "/v1/moderations", "json": {"input": "hello there"}, "headers": auth("moderations")}


def _feedback(i: int) -> dict:
    return {"url": "/v1/feedback", "json": {"response_id": f"chatcmpl-guard{i}", "score": 4}, "headers": auth("feedback")}


REQUESTS = {"embeddings": (_embeddings, 200), "moderations": (_moderations, 200), "feedback": (_feedback, 201)}


def _responses_in_the_database(tmp_path: Path, count: int) -> None:
    """Response records of the feedback key, written as another replica would."""
    from serving.gateway.auth.keys import hash_key, key_id_of

    other = FeedbackStore(f"sqlite:///{tmp_path}/feedback.sqlite3").start()
    for i in range(count):
        other.record_response(record(f"chatcmpl-guard{i}", key_id=key_id_of(hash_key(KEYS["feedback"]))))
    other.close()


@pytest.mark.parametrize("route", list(REQUESTS))
async def test_a_key_limited_to_n_rpm_gets_429_with_headers_on_request_n_plus_1(route, make_app, tmp_path) -> None:
    client, _ = make_app({"rpm": RPM})
    _responses_in_the_database(tmp_path, RPM + 1)
    request, ok = REQUESTS[route]
    for i in range(RPM):
        r = await client.post(**request(i))
        assert r.status_code == ok, r.text
        assert r.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert r.headers["x-ratelimit-remaining-requests"] == str(RPM - 1 - i)
    r = await client.post(**request(RPM))
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and "x-ratelimit-reset-requests" in r.headers
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    # Limits are per key: another key of the same tier is not affected.
    r = await client.post("/v1/moderations", json={"input": "x"}, headers=auth("chat"))
    assert r.status_code == 200


async def test_concurrency_slots_are_taken_and_given_back(make_app) -> None:
    client, handle = make_app({"max_concurrent": 1})
    handle.gate.clear()  # the first embeddings call stays in flight
    first = asyncio.create_task(client.post(**_embeddings(0)))
    while handle.calls == 0:
        await asyncio.sleep(0.01)
    r = await client.post(**_embeddings(1))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    handle.gate.set()
    assert (await first).status_code == 200
    # A refused request (404: unknown model) gives its slot back too.
    r = await client.post("/v1/embeddings", json={"model": "nope", "input": "x"}, headers=auth("embeddings"))
    assert r.status_code == 404
    assert (await client.post(**_embeddings(2))).status_code == 200


async def test_overload_refuses_every_route_with_429_overloaded(make_app) -> None:
    engine = FakeEngine(FakeEngineConfig(reply=tuple(f" w{i}" for i in range(40)), token_delay_s=0.02))
    client, _ = make_app({}, admission={"max_in_flight": 1}, engine=engine)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}
    chat = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=auth("chat")))
    while not engine.running:
        await asyncio.sleep(0.01)
    for route, (request, _) in REQUESTS.items():
        r = await client.post(**request(0))
        assert r.status_code == 429, (route, r.text)
        assert r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] == "1"
    assert (await chat).status_code == 200
    r = await client.post(**_moderations(0))
    assert r.status_code == 200  # the refused requests left nothing counted in flight
