"""Shared wire rules through the OpenAI app: text must be valid Unicode, seed fits int64."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.apps import build_app
from serving.config.settings import Settings
from serving.engine.fake import FakeEngine

MODEL = "fake-model"


def client_for(engine: FakeEngine) -> httpx.AsyncClient:
    app = build_app(Settings(), engine)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


# Raw JSON text: "\ud800" is a JSON escape json.loads accepts, giving a lone surrogate.
@pytest.mark.parametrize(
    ("route", "raw", "param"),
    [
        ("/v1/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}', "messages.0.content"),
        (
            "/v1/chat/completions",
            '{"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": [{"type": "text", "text": "a\\udc00b"}]}]}',
            "messages.1.content.0.text",
        ),
        ("/v1/chat/completions", '{"model": "m", "stream": true, "messages": [{"role": "user", "content": "\\ud800"}]}', "messages.0.content"),
        ("/v1/chat/completions", '{"model": "m", "stop": ["ok", "\\ud800"], "messages": [{"role": "user", "content": "x"}]}', "stop.1"),
        ("/v1/completions", '{"model": "m", "prompt": "\\ud800"}', "prompt"),
        ("/v1/completions", '{"model": "m", "prompt": ["x\\udfff"], "echo": true}', "prompt.0"),
    ],
)
async def test_a_lone_surrogate_is_400_naming_the_field(route: str, raw: str, param: str) -> None:
    engine = FakeEngine()
    async with client_for(engine) as client:
        r = await client.post(route, content=raw.replace('"m"', f'"{MODEL}"'), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert "surrogate" in error["message"]
    assert engine.requests == []


async def test_valid_astral_characters_are_accepted() -> None:
    async with client_for(FakeEngine()) as client:
        r = await client.post(
            "/v1/chat/completions",
            content='{"model": "fake-model", "messages": [{"role": "user", "content": "\\ud83d\\ude00 ok"}]}',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("seed", [2**63, 2**64 - 1, -(2**63) - 1])
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
async def test_seed_beyond_int64_is_400_naming_seed(route: str, seed: int) -> None:
    body = {"model": MODEL, "seed": seed, "messages": [{"role": "user", "content": "x"}], "prompt": "x"}
    body.pop("prompt" if "chat" in route else "messages")
    async with client_for(FakeEngine()) as client:
        r = await client.post(route, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "seed"


@pytest.mark.parametrize("seed", [2**63 - 1, -(2**63), 0])
async def test_seed_within_int64_reaches_the_engine(seed: int) -> None:
    engine = FakeEngine()
    async with client_for(engine) as client:
        r = await client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "seed": seed, "max_tokens": 1})
    assert r.status_code == 200, r.text
    assert engine.requests[0].sampling.seed == seed


@pytest.mark.parametrize("stop", ["x" * 1_000_000, ["ok", "y" * 257]], ids=["one-megabyte", "one-too-long"])
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
async def test_overlong_stop_sequence_is_400_naming_stop(route: str, stop) -> None:
    body = {"model": MODEL, "stop": stop, "messages": [{"role": "user", "content": "x"}], "prompt": "x"}
    body.pop("prompt" if "chat" in route else "messages")
    engine = FakeEngine()
    async with client_for(engine) as client:
        r = await client.post(route, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "stop" and "256" in error["message"] and "yyyy" not in error["message"]
    assert engine.requests == []


async def test_stop_sequences_up_to_the_bound_reach_the_engine() -> None:
    engine = FakeEngine()
    async with client_for(engine) as client:
        r = await client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "stop": ["é" * 256, "."]})
    assert r.status_code == 200, r.text
    assert engine.requests[0].sampling.stop == ("é" * 256, ".")
