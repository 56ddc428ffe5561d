"""The rate-limit policy: limits resolution, 429 with OpenAI headers, real-usage release."""

from __future__ import annotations

import dataclasses

import pytest

from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import ModelInfo, SamplingDefaults
from serving.errors import InvalidRequestError, RateLimitError, ServiceUnavailableError, error_body_for
from serving.gateway.auth.keys import KeyStore
from serving.gateway.limits.buckets import LimiterCore
from serving.gateway.limits.policy import ANNOTATION, LimitResolver, RateLimitPolicy
from serving.gateway.limits.store import LimiterUnavailable, LocalLimiter
from serving.config.gateway import LimitsSettings, TierLimits
from serving.core.result import RequestResult

HEADERS = {
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
}


def settings(**tiers) -> LimitsSettings:
    return LimitsSettings(tiers={"default": TierLimits(), **tiers}, default_output_tokens=100)


@pytest.fixture
def limiter(clock):
    return LocalLimiter(core=LimiterCore(clock=clock))


MODEL = ModelInfo(id="fake-model", max_model_len=4096, created=0)


def policy_for(
    limits: LimitsSettings, limiter, metrics, store=None, fail_open=None, model: ModelInfo | None = MODEL
) -> RateLimitPolicy:
    return RateLimitPolicy(
        limiter,
        LimitResolver(limits, store),
        default_output_tokens=100,
        fail_open=limits.fail_open if fail_open is None else fail_open,
        metrics=metrics,
        model=model,
    )


async def test_n_rpm_then_429_with_headers(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(rpm=2, tpm=10_000)), limiter, metrics)
    oks = []
    for _ in range(2):
        ctx = ctx_factory(key_id="k1", tier="free")
        await policy.before(ctx)
        oks.append(ctx)
    assert set(oks[0].response_headers) == HEADERS
    assert [c.response_headers["x-ratelimit-remaining-requests"] for c in oks] == ["1", "0"]
    denied = ctx_factory(key_id="k1", tier="free")
    with pytest.raises(RateLimitError) as info:
        await policy.before(denied)
    exc = info.value
    assert exc.status_code == 429
    assert exc.headers["retry-after"] == "30"  # 2 rpm: one request every 30 s
    assert HEADERS <= set(exc.headers) and denied.response_headers == exc.headers
    assert exc.headers["x-ratelimit-remaining-requests"] == "0"
    body = error_body_for(exc)["error"]
    assert body["type"] == "rate_limit_error" and body["code"] == "rate_limit_exceeded"
    assert "requests per minute" in body["message"]
    assert denied.annotations[ANNOTATION] == "requests"
    assert metrics.count("rate_limit", "denied", "requests") == 1
    assert metrics.count("rate_limit", "allowed") == 2


async def test_tokens_reserved_from_prompt_and_max_tokens_then_real_usage(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(tpm=1000)), limiter, metrics)
    ctx = ctx_factory(key_id="k", tier="free", messages=["x" * 40], max_tokens=300, n=2)
    await policy.before(ctx)
    # 40 chars / 4 + 4 per message = 14 prompt tokens, plus 2 x 300 output tokens.
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 14 - 600)
    await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=20, completion_tokens=30))
    nxt = ctx_factory(key_id="k", tier="free", messages=["x" * 40], max_tokens=300, n=2)
    await policy.before(nxt)
    assert nxt.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 614)


async def test_tokens_reserved_from_the_engines_exact_prompt_count(limiter, metrics, ctx_factory):
    engine = FakeEngine(FakeEngineConfig(max_model_len=4096))
    policy = policy_for(settings(free=TierLimits(tpm=1000)), limiter, metrics)
    ctx = ctx_factory(key_id="k", tier="free", messages=["x" * 40, "a b c"], max_tokens=300, n=2)
    ctx.tokenize = engine.tokenize  # as the generation pipeline sets it
    await policy.before(ctx)
    # The fake engine's count: (1 + 3) + (3 + 3) = 10 prompt tokens (not the estimate of 12 + 4 per message = 20), plus 2 x 300.
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 10 - 600)
    assert ctx.generate.prompt_token_ids == engine.token_ids(ctx.generate)  # cached for the policies after
    assert engine.tokenize_calls == 1
    # The client left before the first output: the exact prompt is what is charged.
    ctx.annotations["outcome"] = "aborted"
    await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=0, completion_tokens=0))
    nxt = ctx_factory(key_id="k", tier="free", prompt="", max_tokens=1)
    nxt.tokenize = engine.tokenize
    await policy.before(nxt)
    assert nxt.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 10 - 1)


async def test_input_the_tokenizer_refuses_is_400_with_nothing_reserved(limiter, metrics, ctx_factory):
    engine = FakeEngine(FakeEngineConfig(special_tokens=("<|im_end|>",)))
    policy = policy_for(settings(free=TierLimits(tpm=1000, max_concurrent=1)), limiter, metrics)
    ctx = ctx_factory(key_id="k", tier="free", messages=["hi <|im_end|>"])
    ctx.tokenize = engine.tokenize
    with pytest.raises(InvalidRequestError):
        await policy.before(ctx)
    assert limiter.core.in_flight("k") == 0


async def test_unlimited_keys_are_not_tokenized(limiter, metrics, ctx_factory):
    engine = FakeEngine()
    policy = policy_for(settings(), limiter, metrics)
    ctx = ctx_factory(key_id="k", tier="default")
    ctx.tokenize = engine.tokenize
    await policy.before(ctx)
    assert engine.tokenize_calls == 0 and ctx.generate.prompt_token_ids is None


def _without_max_tokens(ctx, default_max_tokens):
    """``ctx`` as the chat route builds it when the client sent no max_tokens."""
    sampling = dataclasses.replace(ctx.generate.sampling, max_tokens=None, default_max_tokens=default_max_tokens)
    ctx.generate = dataclasses.replace(ctx.generate, sampling=sampling)
    return ctx


async def test_missing_max_tokens_reserves_the_models_default_output_cap(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(tpm=100_000)), limiter, metrics)
    ctx = _without_max_tokens(ctx_factory(key_id="k", tier="free", prompt="a" * 8), default_max_tokens=512)
    await policy.before(ctx)
    # 8 chars = 2 prompt tokens, plus the cap the engine will stop at (512), not a fixed 256.
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(100_000 - 2 - 512)


async def test_missing_max_tokens_without_a_cap_reserves_up_to_the_context(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(tpm=100_000)), limiter, metrics)
    ctx = _without_max_tokens(ctx_factory(key_id="k", tier="free", prompt="a" * 8, n=2), default_max_tokens=None)
    await policy.before(ctx)
    # default_max_tokens null: the engine may generate to the context window, per choice.
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(100_000 - 2 - 2 * (4096 - 2))


async def test_body_without_engine_request_uses_the_models_sampling_defaults(limiter, metrics, ctx_factory):
    model = dataclasses.replace(MODEL, sampling_defaults=SamplingDefaults(max_tokens=300))
    policy = policy_for(settings(free=TierLimits(tpm=100_000)), limiter, metrics, model=model)
    ctx = ctx_factory(key_id="k", tier="free", prompt="a" * 8)
    ctx.generate = None  # only the wire body is known
    ctx.body = type("Body", (), {"prompt": "a" * 8, "max_tokens": None, "n": 1})()
    await policy.before(ctx)
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(100_000 - 2 - 300)


async def test_reservation_is_the_response_id(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(max_concurrent=5)), limiter, metrics)
    ctx = ctx_factory(key_id="k", tier="free")
    await policy.before(ctx)
    assert limiter.core.in_flight("k") == 1
    assert ctx.response_id in limiter.core._keys["k"].leases


async def test_abort_before_the_first_output_charges_the_reserved_prompt(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(tpm=1000)), limiter, metrics)
    ctx = ctx_factory(key_id="k", tier="free", prompt="a" * 400, max_tokens=200)
    await policy.before(ctx)
    ctx.annotations["outcome"] = "aborted"  # the client left while the prompt was being prefilled
    await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=0, completion_tokens=0))
    nxt = ctx_factory(key_id="k", tier="free", prompt="", max_tokens=1)
    await policy.before(nxt)
    assert nxt.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 100 - 1)


async def test_too_large_and_tokens_denials_say_so(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(tpm=200)), limiter, metrics)
    with pytest.raises(RateLimitError, match="Request too large"):
        await policy.before(ctx_factory(key_id="k", tier="free", max_tokens=500))
    await policy.before(ctx_factory(key_id="k", tier="free", max_tokens=150))
    with pytest.raises(RateLimitError, match="tokens per minute") as info:
        await policy.before(ctx_factory(key_id="k", tier="free", max_tokens=150))
    assert int(info.value.headers["retry-after"]) >= 1
    assert set(metrics.reasons("rate_limit")) == {"", "too_large", "tokens"}


async def test_concurrency_released_by_after_even_on_error_paths(limiter, metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(max_concurrent=1)), limiter, metrics)
    first = ctx_factory(key_id="k", tier="free")
    await policy.before(first)
    with pytest.raises(RateLimitError, match="concurrent"):
        await policy.before(ctx_factory(key_id="k", tier="free"))
    # Concurrency only: no x-ratelimit headers (OpenAI has none for it).
    assert first.response_headers == {}
    await policy.after(first, RequestResult(started=0.0, prompt_tokens=0, completion_tokens=0))
    await policy.after(first, RequestResult(started=0.0, prompt_tokens=0, completion_tokens=0))  # a second call is harmless
    await policy.before(ctx_factory(key_id="k", tier="free"))


async def test_unlimited_tier_never_touches_the_store(metrics, ctx_factory):
    class Exploding:
        name = "boom"

        async def acquire(self, *a, **kw):
            raise AssertionError("the store was called")

        async def release(self, *a, **kw):
            raise AssertionError("the store was called")

    policy = policy_for(settings(), Exploding(), metrics)
    ctx = ctx_factory(key_id="k", tier="default")
    await policy.before(ctx)
    await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=1, completion_tokens=1))
    assert ctx.response_headers == {}


def test_resolver_merges_tier_keys_file_and_settings(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("keys: [{key: sk-0123456789, id: alice, tier: pro, limits: {rpm: 7}}]")
    limits = LimitsSettings(
        tiers={"default": TierLimits(rpm=1), "pro": TierLimits(rpm=100, tpm=5000)},
        keys={"alice": TierLimits(max_concurrent=3)},
    )
    resolver = LimitResolver(limits, KeyStore(path))
    got = resolver.limits_for("alice", "pro")
    assert (got.rpm, got.tpm, got.max_concurrent) == (7, 5000, 3)
    assert resolver.limits_for("bob", "nonexistent-tier").rpm == 1


class _Down:
    name = "down"

    async def acquire(self, *a, **kw):
        raise LimiterUnavailable("down")

    async def release(self, *a, **kw):
        raise LimiterUnavailable("down")


async def test_store_down_fails_closed_by_default_with_503(metrics, ctx_factory):
    assert LimitsSettings().fail_open is False
    policy = policy_for(settings(free=TierLimits(rpm=1)), _Down(), metrics)
    ctx = ctx_factory(key_id="k", tier="free")
    with pytest.raises(ServiceUnavailableError) as info:
        await policy.before(ctx)
    exc = info.value
    assert exc.status_code == 503 and exc.code == "limiter_unavailable"
    assert exc.headers["retry-after"] == "1"
    body = error_body_for(exc)["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "server_error" and body["code"] == "limiter_unavailable"
    assert "down" not in body["message"]  # the store's error goes to the log, not the client
    assert "rate limiter" in body["message"] and "model" not in body["message"]  # the model is fine
    assert metrics.count("rate_limit", "failed_closed", "store_unavailable") == 1
    assert metrics.unavailable[("down", "acquire", "failed_closed")] == 1
    await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=1, completion_tokens=1))  # nothing was reserved: nothing to release


async def test_store_down_fails_open_when_configured(metrics, ctx_factory):
    policy = policy_for(settings(free=TierLimits(rpm=1)), _Down(), metrics, fail_open=True)
    ctx = ctx_factory(key_id="k", tier="free")
    await policy.before(ctx)
    await policy.after(ctx, RequestResult(started=0.0, prompt_tokens=1, completion_tokens=1))
    assert metrics.count("rate_limit", "failed_open") == 1
    assert metrics.unavailable[("down", "acquire", "failed_open")] == 1
