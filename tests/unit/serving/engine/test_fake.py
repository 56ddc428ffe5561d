"""The fake engine is a faithful stand-in at the seam (it satisfies the Protocol)."""

import pytest

from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import Engine, GenerateRequest, SamplingOptions
from serving.errors import ContextLengthExceededError


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
