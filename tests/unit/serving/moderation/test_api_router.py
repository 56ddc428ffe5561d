"""Moderation through the OpenAI app: input refusal, streamed cut, /v1/moderations (official client)."""

from __future__ import annotations

import json

import openai
import pytest

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
    client, _, op = make_client({"moderation": {"holdback_chars": 24}}, reply=REPLY)
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
