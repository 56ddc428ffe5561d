"""``POST /tokenize`` and ``/detokenize`` (vLLM's routes): the ids generation feeds, and back."""

from __future__ import annotations

import httpx

from serving.config.settings import Settings, load_settings
from serving.engine.fake import FakeEngine
from serving.engine.protocol import GenerateRequest, SamplingOptions
from tests.unit.apps import build_app

MODEL = "fake-model"


def tokenize_request(prompt: str) -> GenerateRequest:
    return GenerateRequest(request_id="t", sampling=SamplingOptions(), prompt=prompt)


def client_for(engine: FakeEngine, settings: Settings | None = None) -> httpx.AsyncClient:
    app = build_app(settings or Settings(), engine)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_tokenize_gives_the_ids_generation_feeds_and_detokenize_returns_the_text() -> None:
    engine = FakeEngine()
    async with client_for(engine) as client:
        r = await client.post("/tokenize", json={"model": MODEL, "prompt": "one two three", "return_token_strs": True,
                                                 "add_special_tokens": False})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == 3 and body["tokens"] == list(engine.token_ids(tokenize_request("one two three")))
        assert body["max_model_len"] == engine.info.max_model_len and body["token_strs"] == ["one", "two", "three"]
        back = await client.post("/detokenize", json={"model": MODEL, "tokens": body["tokens"][:2]})
        assert back.status_code == 200 and back.json() == {"prompt": "one two"}
        chat = await client.post("/tokenize", json={"messages": [{"role": "user", "content": "hi there"}]})
        assert chat.status_code == 200 and chat.json()["count"] == 2 + 3  # words + the fake template's 3
        assert chat.json()["token_strs"] is None


async def test_tokenize_and_detokenize_refuse_what_they_cannot_do() -> None:
    engine = FakeEngine()
    async with client_for(engine) as client:
        neither = await client.post("/tokenize", json={"model": MODEL})
        both = await client.post("/tokenize", json={"prompt": "x", "messages": [{"role": "user", "content": "x"}]})
        other_model = await client.post("/tokenize", json={"model": "gpt-4", "prompt": "x"})
        unknown_id = await client.post("/detokenize", json={"tokens": [123456789]})
        not_ints = await client.post("/detokenize", json={"tokens": ["a"]})
        extra = await client.post("/detokenize", json={"tokens": [], "surprise": 1})
    for r in (neither, both):
        assert r.status_code == 400 and "send exactly one of prompt or messages" in r.json()["error"]["message"]
        assert r.json()["error"]["param"] == "prompt"
    assert other_model.status_code == 404 and other_model.json()["error"]["param"] == "model"
    assert unknown_id.status_code == 400 and unknown_id.json()["error"]["param"] == "tokens"
    assert not_ints.status_code == 400 and extra.status_code == 400


async def test_tokenize_is_behind_the_api_key_like_every_route(tmp_path) -> None:
    # vLLM's server leaves paths outside /v1 open; here deny by default covers them too (a
    # client without the key, like `vllm bench serve`'s prompt alignment, gets 401 and goes on).
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys: [{key: sk-good-0123456789}]")
    settings = load_settings({"gateway": {"auth": {"enabled": True, "keys_file": str(keys)}}})
    async with client_for(FakeEngine(), settings) as client:
        anonymous = await client.post("/tokenize", json={"prompt": "x"})
        keyed = await client.post("/detokenize", json={"tokens": []},
                                  headers={"Authorization": "Bearer sk-good-0123456789"})
    assert anonymous.status_code == 401
    assert keyed.status_code == 200 and keyed.json() == {"prompt": ""}
