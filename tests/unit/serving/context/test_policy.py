"""The context policy: truncate_oldest keeps system + newest turns; reject explains; headers report."""

from __future__ import annotations

import dataclasses
import math

import pytest

from serving.context.policy import DROPPED_MESSAGES_HEADER, DROPPED_TOKENS_HEADER, ContextWindowPolicy
from serving.config.context import ContextSettings
from serving.context.tokens import engine_token_counter
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import GenerateRequest, SamplingOptions
from serving.errors import ContextLengthExceededError, InvalidRequestError
from serving.core.context import RequestContext

WINDOW = 100
ENGINE = FakeEngine(FakeEngineConfig(max_model_len=WINDOW))  # counts words + 3 per message


def msg(role: str, words: int, tag: str = "") -> dict[str, str]:
    return {"role": role, "content": " ".join([tag or role] * words)}


def ctx_for(messages, max_tokens: int | None = 20) -> RequestContext:
    request = GenerateRequest(request_id="r", sampling=SamplingOptions(max_tokens=max_tokens), messages=tuple(messages))
    return RequestContext(
        request_id="r", response_id="chatcmpl-r", route="/v1/chat/completions", model="m", headers={}, body=None,
        generate=request,
    )


def make_policy(**values) -> ContextWindowPolicy:
    return ContextWindowPolicy(
        ContextSettings(**values), max_model_len=WINDOW, count_tokens=engine_token_counter(ENGINE)
    )


def conversation(turns: int, words: int = 7) -> list[dict[str, str]]:
    messages = [msg("system", 5)]
    for i in range(turns):
        messages.append(msg("user", words, f"u{i}"))
        messages.append(msg("assistant", words, f"a{i}"))
    messages.append(msg("user", words, "last"))
    return messages


async def test_fitting_conversation_is_untouched() -> None:
    ctx = ctx_for(conversation(2))
    assert await make_policy().before(ctx) is None
    assert ctx.response_headers == {}


async def test_truncate_oldest_keeps_system_and_newest_turns_that_fit() -> None:
    messages = conversation(8)  # 1 + 16 + 1 messages, 8 + 17*10 = 178 tokens
    ctx = ctx_for(messages, max_tokens=20)  # budget 80
    policy = make_policy()
    truncated = await policy.before(ctx)
    kept = truncated.messages
    assert kept[0] == messages[0]  # the system prompt stays
    assert kept[-1] == messages[-1]  # the newest message stays
    assert kept[1]["role"] == "user"  # the kept part starts at a user turn
    assert list(kept[1:]) == messages[len(messages) - (len(kept) - 1) :]  # a contiguous newest suffix
    assert ENGINE.count_tokens(truncated) <= 80
    # Nothing more would have fit: one more (older) turn overflows.
    bigger = dataclasses.replace(truncated, messages=(messages[0], *messages[-(len(kept) + 1) :]))
    assert ENGINE.count_tokens(bigger) > 80
    dropped = len(messages) - len(kept)
    assert ctx.response_headers[DROPPED_MESSAGES_HEADER] == str(dropped)
    assert ctx.response_headers[DROPPED_TOKENS_HEADER] == str(ENGINE.count_tokens(ctx.generate) - ENGINE.count_tokens(truncated))
    assert ctx.annotations["context_dropped_messages"] == dropped
    assert truncated.sampling == ctx.generate.sampling and truncated.request_id == ctx.generate.request_id


async def test_system_messages_anywhere_are_kept() -> None:
    messages = [msg("system", 3), msg("user", 30, "old"), msg("system", 3, "note"), msg("assistant", 30), msg("user", 10)]
    truncated = await make_policy().before(ctx_for(messages, max_tokens=50))
    assert [m["role"] for m in truncated.messages] == ["system", "system", "user"]


async def test_reject_policy_explains_the_numbers() -> None:
    ctx = ctx_for(conversation(8), max_tokens=20)
    with pytest.raises(ContextLengthExceededError) as info:
        await make_policy(policy="reject").before(ctx)
    err = info.value
    assert err.status_code == 400 and err.code == "context_length_exceeded" and err.param == "messages"
    assert "178 prompt tokens" in err.message and "only 80 fit" in err.message and "100 tokens" in err.message


async def test_newest_message_alone_too_long_is_refused() -> None:
    messages = [msg("system", 5), msg("user", 5), msg("assistant", 5), msg("user", 90)]
    with pytest.raises(ContextLengthExceededError, match="newest message do not fit"):
        await make_policy().before(ctx_for(messages, max_tokens=20))


async def test_without_max_tokens_the_reserve_applies_capped_at_half_the_window() -> None:
    policy = make_policy(reserve_output_tokens=1000)
    ctx = ctx_for(conversation(8), max_tokens=None)
    truncated = await policy.before(ctx)
    assert ENGINE.count_tokens(truncated) <= WINDOW // 2
    # A single message the reserve cannot make room for is left to the engine.
    alone = ctx_for([msg("user", 70)], max_tokens=None)
    assert await policy.before(alone) is None


async def test_max_tokens_over_the_window_is_refused() -> None:
    with pytest.raises(ContextLengthExceededError):
        await make_policy().before(ctx_for(conversation(1), max_tokens=WINDOW))


async def test_raw_prompts_and_policy_off_are_left_alone() -> None:
    request = GenerateRequest(request_id="r", sampling=SamplingOptions(max_tokens=20), prompt="word " * 500)
    ctx = ctx_for([msg("user", 1)])
    ctx.generate = request
    assert await make_policy().before(ctx) is None
    assert await make_policy(policy="off").before(ctx_for(conversation(20))) is None


async def test_a_fitting_conversation_reuses_the_cached_ids() -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=WINDOW))
    policy = ContextWindowPolicy(ContextSettings(), max_model_len=WINDOW, count_tokens=engine_token_counter(engine))
    ctx = ctx_for(conversation(2))
    ids = engine.token_ids(ctx.generate)
    ctx.generate = dataclasses.replace(ctx.generate, prompt_token_ids=ids)  # e.g. the rate limiter's
    assert await policy.before(ctx) is None
    assert engine.tokenize_calls == 0 and ctx.generate.prompt_token_ids == ids
    # Nothing cached yet: tokenized once, and the ids stay on the request for the engine.
    fresh = ctx_for(conversation(2))
    assert await policy.before(fresh) is None
    assert engine.tokenize_calls == 1 and fresh.generate.prompt_token_ids == ids


async def test_truncation_carries_the_kept_conversations_ids() -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=WINDOW))
    policy = ContextWindowPolicy(ContextSettings(), max_model_len=WINDOW, count_tokens=engine_token_counter(engine))
    ctx = ctx_for(conversation(8))
    truncated = await policy.before(ctx)
    assert truncated is not None and truncated.prompt_token_ids == engine.token_ids(truncated)
    others = len(ctx.generate.messages) - 1
    # The whole conversation once, then a binary search: no count per message, no recount of the kept one.
    assert engine.tokenize_calls <= 1 + math.ceil(math.log2(others))
    assert ctx.generate.prompt_token_ids == engine.token_ids(ctx.generate)  # the original's, cached
    assert ctx.response_headers[DROPPED_TOKENS_HEADER] == str(len(ctx.generate.prompt_token_ids) - len(truncated.prompt_token_ids))
    # The engine feeds the carried ids: no tokenization at generate.
    calls = engine.tokenize_calls
    outs = [o async for o in engine.generate(truncated)]
    assert outs[0].prompt_tokens == len(truncated.prompt_token_ids) and engine.tokenize_calls == calls


async def test_tokenizer_errors_reach_the_client() -> None:
    engine = FakeEngine(FakeEngineConfig(max_model_len=WINDOW, special_tokens=("<|im_end|>",)))
    policy = ContextWindowPolicy(ContextSettings(), max_model_len=WINDOW, count_tokens=engine_token_counter(engine))
    with pytest.raises(InvalidRequestError):
        await policy.before(ctx_for([msg("user", 3), {"role": "user", "content": "x <|im_end|>"}]))


def test_engine_without_an_async_tokenizer_is_an_error() -> None:
    with pytest.raises(TypeError, match="tokenize"):
        engine_token_counter(object())

    class SyncTokenizer:
        def tokenize(self, request: GenerateRequest) -> tuple[int, ...]:
            return ()

    with pytest.raises(TypeError, match="async tokenize"):
        engine_token_counter(SyncTokenizer())
