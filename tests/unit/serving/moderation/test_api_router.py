"""Moderation through the OpenAI app: input refusal, streamed cut, /v1/moderations (official client)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.unit.serving.moderation.test_input_policy import MatchThreads
from tests.unit.serving.privacy.test_pii import dense_pii

REPLY = ("Sure", ",", " the", " forbidden", " phrase", " is", " here", ".")


def sse_chunks(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_blocked_input_is_400_content_filter(make_client) -> None:
    client, engine, op = make_client()
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "say the Forbidden Phrase"}]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "content_filter" and error["param"] == "messages"
    assert "test/unsafe" in error["message"] and "Forbidden Phrase" not in error["message"]
    assert op.components["moderation_policy"].metrics.count("block", "input", "test/unsafe") == 1
    assert engine.running == set()


async def test_streamed_output_is_cut_with_content_filter(make_client) -> None:
    client, _, op = make_client(reply=REPLY)
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    chunks = sse_chunks(r.text)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "Sure, the "
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert r.text.rstrip().endswith("data: [DONE]")
    assert op.components["moderation_policy"].metrics.count("block", "output", "test/unsafe") == 1


async def test_whole_response_is_cut_too(make_client) -> None:
    client, _, _ = make_client(reply=REPLY)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "go"}]}
    r = await client.post("/v1/chat/completions", json=body)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and "forbidden" not in choice["message"]["content"]


def _logprob_tokens(entries: list[dict]) -> list[str]:
    """Every token string of chat ``logprobs.content`` entries, sampled and top alternatives."""
    return [t for e in entries for t in (e["token"], *(top["token"] for top in e["top_logprobs"]))]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_no_logprob_of_blocked_text_reaches_the_client(make_client, stream: bool) -> None:
    client, _, _ = make_client(reply=REPLY)
    body = {
        "model": "fake-model", "stream": stream, "logprobs": True, "top_logprobs": 1,
        "messages": [{"role": "user", "content": "go"}],
    }
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    if stream:
        chunks = [c for c in sse_chunks(r.text) if c["choices"]]
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        entries = [e for c in chunks for e in ((c["choices"][0].get("logprobs") or {}).get("content") or ())]
        assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    else:
        choice = r.json()["choices"][0]
        content, entries = choice["message"]["content"], choice["logprobs"]["content"]
        assert choice["finish_reason"] == "content_filter"
    assert content == "Sure, the "
    tokens = _logprob_tokens(entries)
    assert " forbidden" not in tokens and " phrase" not in tokens
    assert [e["token"] for e in entries] == ["Sure", ",", " the"]  # the released text keeps its logprobs


async def test_no_logprob_of_blocked_text_reaches_a_completions_stream(make_client) -> None:
    client, _, _ = make_client(reply=REPLY)
    body = {"model": "fake-model", "stream": True, "logprobs": 1, "prompt": "go", "max_tokens": 20}
    r = await client.post("/v1/completions", json=body)
    chunks = [c for c in sse_chunks(r.text) if c["choices"]]
    tokens = [t for c in chunks for t in ((c["choices"][0].get("logprobs") or {}).get("tokens") or ())]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Sure, the "
    assert tokens == ["Sure", ",", " the"]


async def test_moderations_with_the_official_client(make_client) -> None:
    client, _, _ = make_client()
    oai = openai.AsyncOpenAI(api_key="unused", base_url="http://test/v1", http_client=client)
    result = await oai.moderations.create(
        input=["the forbidden phrase", "card 4111 1111 1111 1111", "mail a@b.io", "hello"]
    )
    assert result.id.startswith("modr-") and result.model == "serving-moderation-1"
    unsafe, card, email, hello = result.results
    assert unsafe.flagged and categories(unsafe)["test/unsafe"] is True
    assert card.flagged and card.category_scores.model_dump(by_alias=True)["pii/card"] == 1.0
    assert not email.flagged and categories(email)["pii/email"] is True  # flagged-only category
    assert not hello.flagged and not any(categories(hello).values())


def categories(result) -> dict:
    """Every category of a result: OpenAI's named ones and ours (extras)."""
    return {k: v for k, v in result.categories.model_dump(by_alias=True).items() if v is not None}


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": "x", "model": "no-such-model"}, 404, "model"),
        ({"input": []}, 400, "input"),
        ({"input": 5}, 400, "input"),
        ({"input": "x", "extra": 1}, 400, "extra"),
        ({"input": [{"type": "image_url", "image_url": {"url": "http://x"}}]}, 400, None),
    ],
)
async def test_moderations_bad_requests(make_client, body, status, param) -> None:
    client, _, _ = make_client()
    r = await client.post("/v1/moderations", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["message"]
    if param is not None:
        assert error["param"].split(".")[0] == param


async def test_openai_model_aliases_are_accepted(make_client) -> None:
    client, _, _ = make_client()
    r = await client.post("/v1/moderations", json={"input": "hi", "model": "omni-moderation-latest"})
    assert r.status_code == 200 and r.json()["results"][0]["flagged"] is False


async def test_moderation_off_means_no_hooks_and_no_route(make_client) -> None:
    client, _, op = make_client({"moderation": {"enabled": False}}, reply=REPLY)
    assert "moderation_policy" not in op.components
    assert not any("Moderation" in type(h).__name__ for h in (*op.policies, *op.stream_hooks))
    r = await client.post("/v1/moderations", json={"input": "x"})
    assert r.status_code == 404
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "forbidden phrase"}]}
    assert (await client.post("/v1/chat/completions", json=body)).status_code == 200


async def test_many_pii_dense_inputs_do_not_block_the_event_loop(make_client) -> None:
    client, _, op = make_client()
    inputs = [dense_pii(80) for _ in range(64)]  # 64 x ~3.8 KB, ~160 matches each
    with MatchThreads(op.components["moderation_policy"]) as threads:
        r = await client.post("/v1/moderations", json={"input": inputs})
    assert r.status_code == 200, r.text
    assert all(result["categories"]["pii/email"] for result in r.json()["results"])
    assert len(threads.calls) >= 64 and threads.on_loop() == []  # each short, all together long


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ["a" * 45, "b" * 45, "c" * 45]}, "input"),  # 135 chars in all: over max_request_chars
        ({"input": "c" * 51}, "input"),  # one text over max_text_chars
        ({"input": ["ok", "d" * 51]}, "input.1"),
        ({"input": [{"type": "text", "text": "ok"}, {"type": "text", "text": "e" * 51}]}, "input.1.text"),
    ],
)
async def test_moderations_over_the_limits_are_400_not_unscanned(make_client, body, param) -> None:
    client, _, _ = make_client({"moderation": {"max_text_chars": 50, "max_request_chars": 100}})
    r = await client.post("/v1/moderations", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["code"] == "input_too_long"
    assert (await client.post("/v1/moderations", json={"input": ["a" * 50, "b" * 50]})).status_code == 200


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ('{"input": "\\ud800"}', "input"),
        ('{"input": ["fine", "bad \\udfff"]}', "input.1"),
        ('{"input": [{"type": "text", "text": "\\ud800"}]}', "input.0.text"),
    ],
)
async def test_moderations_lone_surrogate_is_400_naming_the_input(make_client, raw, param) -> None:
    client, _, _ = make_client()
    r = await client.post("/v1/moderations", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
