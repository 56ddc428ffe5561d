"""The fake engine is a faithful stand-in at the seam (it satisfies the Protocol)."""

import dataclasses

import pytest

from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import Engine, GenerateRequest, SamplingOptions
from serving.errors import ContextLengthExceededError, EngineError


def test_fake_engine_satisfies_engine_protocol() -> None:
    assert isinstance(FakeEngine(), Engine)


async def test_fake_engine_honours_max_tokens_and_context() -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=10))
    request = GenerateRequest(request_id="r", sampling=SamplingOptions(max_tokens=2), prompt="a b c")
    outs = [o async for o in engine.generate(request)]
    assert sum(c.num_tokens for o in outs for c in o.choices) == 2
    assert outs[-1].choices[-1].finish_reason == "length"
    with pytest.raises(ContextLengthExceededError):
        async for _ in engine.generate(GenerateRequest(request_id="x", sampling=SamplingOptions(max_tokens=9), prompt="a b")):
            pass


async def test_fake_engine_applies_a_default_cap_within_the_context() -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=10, reply=tuple("abcdefghij")))
    capped = GenerateRequest(request_id="c", sampling=SamplingOptions(default_max_tokens=3), prompt="a b")
    over = GenerateRequest(request_id="o", sampling=SamplingOptions(default_max_tokens=50), prompt="a b")
    assert sum(c.num_tokens for o in [o async for o in engine.generate(capped)] for c in o.choices) == 3
    assert sum(c.num_tokens for o in [o async for o in engine.generate(over)] for c in o.choices) == 8  # the room
    assert [r.request_id for r in engine.requests] == ["c", "o"]


def _chat(*contents: str) -> GenerateRequest:
    messages = tuple({"role": "user", "content": c} for c in contents)
    return GenerateRequest(request_id="m", sampling=SamplingOptions(max_tokens=1), messages=messages)


async def test_fake_tokenize_is_deterministic_and_counts_words_plus_3_per_message() -> None:
    engine = FakeEngine()
    ids = await engine.tokenize(_chat("a b c", "d"))
    assert len(ids) == (3 + 3) + (1 + 3) == engine.count_tokens(_chat("a b c", "d"))
    assert ids == await FakeEngine().tokenize(_chat("a b c", "d"))  # the same text, the same ids
    assert ids != await engine.tokenize(_chat("a b x", "d"))
    assert await engine.tokenize(GenerateRequest(request_id="p", sampling=SamplingOptions(), prompt="a b")) == ids[2:4]
    assert await engine.count_prompt_tokens(_chat("a b c")) == 6
    assert engine.tokenize_calls == 4  # count_tokens (a sync test helper) is not a tokenization


async def test_fake_generate_feeds_carried_ids_and_refuses_stale_ones() -> None:
    engine = FakeEngine()
    request = _chat("a b c")
    carried = dataclasses.replace(request, prompt_token_ids=await engine.tokenize(request))
    outs = [o async for o in engine.generate(carried)]
    assert outs[0].prompt_tokens == 6 and engine.tokenize_calls == 1  # generate did not tokenize
    assert await engine.count_prompt_tokens(carried) == 6 and engine.tokenize_calls == 1
    [o async for o in engine.generate(request)]
    assert engine.tokenize_calls == 2  # without ids, generate tokenizes
    stale = dataclasses.replace(carried, messages=({"role": "user", "content": "other words"},))
    with pytest.raises(EngineError, match="stale"):
        async for _ in engine.generate(stale):
            pass


def test_token_ids_are_a_cache_not_the_requests_identity() -> None:
    request = _chat("a b")
    carried = dataclasses.replace(request, prompt_token_ids=[1, 2])
    assert carried.prompt_token_ids == (1, 2)  # kept as a tuple
    assert carried == request and "prompt_token_ids" not in repr(carried)
