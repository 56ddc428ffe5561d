"""Hygiene: message / character bounds, max_tokens vs the context window, the output cap."""

from __future__ import annotations

import pytest

from serving.errors import ContextLengthExceededError, InvalidRequestError
from serving.gateway.hygiene.policy import HygienePolicy
from serving.config.gateway import HygieneSettings


def policy(metrics, **kw) -> HygienePolicy:
    return HygienePolicy(HygieneSettings(**kw), max_model_len=128, metrics=metrics)


async def test_too_many_messages(metrics, ctx_factory):
    p = policy(metrics, max_messages=2)
    await p.before(ctx_factory(messages=["a", "b"]))
    with pytest.raises(InvalidRequestError) as info:
        await p.before(ctx_factory(messages=["a", "b", "c"]))
    assert info.value.param == "messages" and info.value.status_code == 400
    assert metrics.count("hygiene", "denied", "messages") == 1


@pytest.mark.parametrize(("kwargs", "param"), [({"messages": ["abc", "de"]}, "messages"), ({"prompt": "abcde"}, "prompt")])
async def test_too_many_chars(metrics, ctx_factory, kwargs, param):
    p = policy(metrics, max_chars=4)
    with pytest.raises(InvalidRequestError) as info:
        await p.before(ctx_factory(**kwargs))
    assert info.value.param == param and info.value.code == "input_too_long"


async def test_max_tokens_beyond_context_window_is_400(metrics, ctx_factory):
    with pytest.raises(ContextLengthExceededError) as info:
        await policy(metrics).before(ctx_factory(max_tokens=128))
    assert info.value.param == "max_tokens" and info.value.status_code == 400


async def test_output_cap_lowers_max_tokens(metrics, ctx_factory):
    p = policy(metrics, max_output_tokens=10)
    assert await p.before(ctx_factory(max_tokens=10)) is None
    for asked in (50, None):
        ctx = ctx_factory(max_tokens=asked)
        replaced = await p.before(ctx)
        assert replaced.sampling.max_tokens == 10
        assert replaced.request_id == ctx.generate.request_id and replaced.messages == ctx.generate.messages
    assert metrics.count("hygiene", "clamped") == 2


async def test_no_cap_leaves_request_alone(metrics, ctx_factory):
    assert await policy(metrics).before(ctx_factory(max_tokens=None)) is None
