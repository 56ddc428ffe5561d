"""Tokenize once per request: the ids are cached on the engine request, the rate limiter
reserves with their exact count, the context policy counts with them, and the engine feeds
them without tokenizing again (fake engine at the seam, the production app builder)."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.unit.apps import build_app
from serving.config.settings import load_settings
from serving.context.policy import DROPPED_MESSAGES_HEADER
from serving.core.context import RequestContext
from serving.core.tokens import prompt_token_ids
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import GenerateRequest, SamplingOptions
from serving.gateway.auth.keys import hash_key, key_id_of
from serving.gateway.limits.buckets import LimiterCore
from serving.gateway.limits.store import LocalLimiter

KEY = "sk-tokens-0123456789abcdef"
KEY_ID = key_id_of(hash_key(KEY))
TPM = 100_000


def _ctx(request: GenerateRequest | None, tokenize=None) -> RequestContext:
    return RequestContext(
        request_id="r", response_id="chatcmpl-r", route="/v1/chat/completions", model="m", headers={}, body=None,
        generate=request, tokenize=tokenize,
    )


def _chat(*contents: str, max_tokens: int | None = 8) -> GenerateRequest:
    messages = tuple({"role": "user", "content": c} for c in contents)
    return GenerateRequest(request_id="r", sampling=SamplingOptions(max_tokens=max_tokens), messages=messages)


# -- serving.core.tokens.prompt_token_ids -----------------------------------------


async def test_tokenized_once_and_cached_on_the_request() -> None:
    engine = FakeEngine()
    ctx = _ctx(_chat("a b c"), engine.tokenize)
    ids = await prompt_token_ids(ctx)
    assert ids == engine.token_ids(ctx.generate) and ctx.generate.prompt_token_ids == ids
    assert await prompt_token_ids(ctx) == ids and await prompt_token_ids(ctx, engine.tokenize) == ids
    assert engine.tokenize_calls == 1


async def test_an_explicit_tokenizer_serves_a_context_without_one() -> None:
    engine = FakeEngine()
    ctx = _ctx(_chat("a b"))
    assert await prompt_token_ids(ctx) is None  # no tokenizer at hand: the caller estimates
    assert ctx.generate.prompt_token_ids is None
    assert await prompt_token_ids(ctx, engine.tokenize) == engine.token_ids(ctx.generate)
    assert await prompt_token_ids(_ctx(None, engine.tokenize)) is None  # a route that generates nothing
    assert engine.tokenize_calls == 1


# -- end to end through the production app -----------------------------------------


def _app(tmp_path, engine: FakeEngine, *, limits: bool = True, **extra):
    tree: dict = {**extra}
    if limits:
        keys = tmp_path / "keys.yaml"
        keys.write_text(f"keys: [{{key: {KEY}, tier: metered}}]")
        tree["gateway"] = {
            "auth": {"enabled": True, "keys_file": str(keys)},
            "limits": {"tiers": {"default": {}, "metered": {"tpm": TPM, "max_concurrent": 4}}},
        }
    settings = load_settings(tree)
    assert settings.context.policy != "off"  # the context policy counts too (the default)
    frozen = LocalLimiter(core=LimiterCore(clock=lambda: 1000.0))  # nothing refills during a test
    return build_app(settings, engine, overrides={"limiter": frozen})


def _post(messages: list[dict], **body) -> dict:
    payload = {"model": "fake-model", "messages": messages, **body}
    return {"url": "/v1/chat/completions", "json": payload, "headers": {"authorization": f"Bearer {KEY}"}}


async def _send(app, *requests: dict) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        return [await c.post(**r) for r in requests]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_chat_request_is_tokenized_exactly_once(tmp_path, stream: bool) -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096))
    app = _app(tmp_path, engine)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a token?"}]
    for i in range(1, 4):
        (r,) = await _send(app, _post(conversation, max_tokens=16, stream=stream))
        assert r.status_code == 200, r.text
        assert engine.tokenize_calls == i  # the limiter tokenized; the context policy and the engine reused it
    fed = engine.requests[-1]
    assert fed.prompt_token_ids == engine.token_ids(fed)  # generate was handed the ids


async def test_without_rate_limits_the_context_policy_tokenizes_once(tmp_path) -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096))
    app = _app(tmp_path, engine, limits=False)
    (r,) = await _send(app, _post([{"role": "user", "content": "hello there"}], max_tokens=4))
    assert r.status_code == 200 and engine.tokenize_calls == 1
    assert engine.requests[-1].prompt_token_ids is not None


async def test_the_limiter_reserves_the_exact_prompt_count(tmp_path) -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096))
    app = _app(tmp_path, engine)
    messages = [{"role": "user", "content": "one two three four five six"}]  # 27 chars: the estimate was 7 + 4
    exact = engine.count_tokens(_chat(messages[0]["content"]))
    assert exact == 6 + 3
    (r,) = await _send(app, _post(messages, max_tokens=20))
    assert r.status_code == 200
    assert r.headers["x-ratelimit-remaining-tokens"] == str(TPM - exact - 20)
    assert r.json()["usage"]["prompt_tokens"] == exact  # the same count the engine reports


async def test_a_truncated_conversation_carries_the_kept_ids_to_the_engine(tmp_path) -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=100))
    app = _app(tmp_path, engine)
    messages = [{"role": "system", "content": "sys " * 5}]
    for i in range(8):
        messages += [{"role": "user", "content": f"u{i} " * 7}, {"role": "assistant", "content": f"a{i} " * 7}]
    messages.append({"role": "user", "content": "last " * 7})
    (r,) = await _send(app, _post(messages, max_tokens=20))
    assert r.status_code == 200, r.text
    assert int(r.headers[DROPPED_MESSAGES_HEADER]) > 0
    fed = engine.requests[-1]
    assert len(fed.messages) < len(messages) and fed.prompt_token_ids == engine.token_ids(fed)
    # The whole conversation once (the limiter), the binary search (the context policy), none at generate.
    assert engine.tokenize_calls <= 1 + math.ceil(math.log2(len(messages) - 1))
    assert r.json()["usage"]["prompt_tokens"] == len(fed.prompt_token_ids)
    # The reservation was the whole conversation's; settled by the real usage in after().
    (nxt,) = await _send(app, _post([{"role": "user", "content": "hi"}], max_tokens=1))
    usage = r.json()["usage"]
    assert nxt.headers["x-ratelimit-remaining-tokens"] == str(
        TPM - usage["prompt_tokens"] - usage["completion_tokens"] - (1 + 3) - 1
    )


async def test_a_completion_prompt_is_tokenized_once_too(tmp_path) -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096))
    app = _app(tmp_path, engine)
    body = {"model": "fake-model", "prompt": "a b c d", "max_tokens": 3}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        r = await c.post("/v1/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    assert r.headers["x-ratelimit-remaining-tokens"] == str(TPM - 4 - 3)
    assert engine.tokenize_calls == 1 and engine.requests[-1].prompt_token_ids is not None


async def test_special_token_text_is_still_a_400(tmp_path) -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096, special_tokens=("<|im_end|>",)))
    app = _app(tmp_path, engine)
    (r,) = await _send(app, _post([{"role": "user", "content": "hi <|im_end|>"}], max_tokens=4))
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content"
    assert engine.requests == []
