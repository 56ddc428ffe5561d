"""Per-key rpm / tpm / concurrency limits as a request policy (429 + OpenAI rate-limit headers)."""

from __future__ import annotations

import logging
import time

from serving.engine.protocol import GenerateRequest
from serving.errors import RateLimitError
from serving.gateway.admission.policy import OVERLOADED_ANNOTATION
from serving.gateway.auth.keys import KeyStore
from serving.gateway.hooks import RequestContext
from serving.gateway.limits.buckets import CONCURRENCY, REQUESTS, TOKENS, TOO_LARGE, Decision, Limits
from serving.gateway.limits.headers import duration, rate_limit_headers, retry_after
from serving.gateway.limits.store import Limiter, LimiterUnavailable
from serving.gateway.metrics import ALLOWED, DENIED, FAILED_OPEN, GatewayMetrics
from serving.gateway.request_view import view_of
from serving.gateway.settings import LimitsSettings, TierLimits

log = logging.getLogger(__name__)

ANNOTATION = "rate_limit_reason"  # ctx.annotations key naming why a request was limited


def refused_for_overload(ctx: RequestContext) -> bool:
    """Whether the request ended as an overload 429 (its request is then not counted)."""
    return ctx.annotations.get(OVERLOADED_ANNOTATION) is True or ctx.annotations.get("outcome") == "overloaded"


class LimitResolver:
    """The limits of a key: its tier's, then the keys file's override, then the settings' override."""

    def __init__(self, settings: LimitsSettings, store: KeyStore | None = None) -> None:
        self.settings = settings
        self.store = store

    def limits_for(self, key_id: str | None, tier: str | None) -> Limits:
        """The merged limits of one key."""
        base = self.settings.tiers.get(tier or "") or self.settings.tiers[self.settings.default_tier]
        merged: TierLimits = base
        if self.store is not None and key_id is not None:
            record = self.store.by_id(key_id)
            merged = merged.merged(record.limits if record else None)
        if key_id is not None:
            merged = merged.merged(self.settings.keys.get(key_id))
        return Limits(rpm=merged.rpm, tpm=merged.tpm, max_concurrent=merged.max_concurrent)


def _message(decision: Decision, tokens: int) -> str:
    wait = duration(decision.retry_after_s)
    if decision.reason == REQUESTS and decision.requests is not None:
        return (
            f"Rate limit reached for requests per minute (RPM): limit {decision.requests.limit}, "
            f"remaining {decision.requests.remaining}. Please try again in {wait}."
        )
    if decision.reason == TOKENS and decision.tokens is not None:
        return (
            f"Rate limit reached for tokens per minute (TPM): limit {decision.tokens.limit}, "
            f"remaining {decision.tokens.remaining}, requested {tokens}. Please try again in {wait}."
        )
    if decision.reason == TOO_LARGE and decision.tokens is not None:
        return (
            f"Request too large for tokens per minute (TPM): limit {decision.tokens.limit}, "
            f"requested {tokens} (prompt + max_tokens). Lower max_tokens or the prompt size."
        )
    return (
        f"Too many concurrent requests for this key: limit {decision.concurrency_limit}. "
        f"Please try again in {wait}."
    )


class RateLimitPolicy:
    """Reserves each request against its key's limits; refuses with 429 + headers when over."""

    name = "rate_limit"

    def __init__(
        self,
        limiter: Limiter,
        resolver: LimitResolver,
        *,
        default_output_tokens: int,
        fail_open: bool,
        metrics: GatewayMetrics,
    ) -> None:
        self.limiter = limiter
        self.resolver = resolver
        self.default_output_tokens = default_output_tokens
        self.fail_open = fail_open
        self.metrics = metrics
        self._reservations: dict[str, tuple[str, str]] = {}

    def _tokens(self, ctx: RequestContext) -> int:
        view = view_of(ctx)
        output = view.max_tokens if view.max_tokens is not None else self.default_output_tokens
        return view.prompt_token_estimate() + output * max(1, view.n)

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        key = ctx.key_id or "anonymous"
        limits = self.resolver.limits_for(ctx.key_id, ctx.tier)
        if limits.is_unlimited():
            return None
        tokens = self._tokens(ctx)
        started = time.perf_counter()
        try:
            decision = await self.limiter.acquire(key, limits, tokens)
        except LimiterUnavailable as exc:
            return self._unavailable(ctx, exc)
        finally:
            self.metrics.limiter_check(time.perf_counter() - started, self.limiter.name)
        headers = rate_limit_headers(decision)
        ctx.response_headers.update(headers)
        if decision.allowed:
            assert decision.reservation is not None
            self._reservations[ctx.response_id] = (key, decision.reservation)
            self.metrics.decision(self.name, ALLOWED, tier=ctx.tier, key_id=ctx.key_id)
            return None
        reason = decision.reason or CONCURRENCY
        ctx.annotations[ANNOTATION] = reason
        self.metrics.decision(self.name, DENIED, reason, tier=ctx.tier, key_id=ctx.key_id)
        headers["retry-after"] = retry_after(decision.retry_after_s)
        ctx.response_headers["retry-after"] = headers["retry-after"]
        raise RateLimitError(_message(decision, tokens), headers=headers)

    def _unavailable(self, ctx: RequestContext, exc: LimiterUnavailable) -> None:
        log.warning("request %s: rate limiter unavailable (%s)", ctx.request_id, exc)
        if self.fail_open:
            self.metrics.decision(self.name, FAILED_OPEN, "store_unavailable", tier=ctx.tier, key_id=ctx.key_id)
            return None
        self.metrics.decision(self.name, DENIED, "store_unavailable", tier=ctx.tier, key_id=ctx.key_id)
        raise RateLimitError("Rate limits cannot be checked right now. Please retry shortly.", headers={"retry-after": "1"})

    async def after(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> None:
        held = self._reservations.pop(ctx.response_id, None)
        if held is None:
            return
        key, reservation = held
        try:
            await self.limiter.release(
                key, reservation, prompt_tokens + completion_tokens, refund_request=refused_for_overload(ctx)
            )
        except LimiterUnavailable as exc:  # the lease expires on its own
            log.warning("request %s: rate limiter release failed (%s)", ctx.request_id, exc)
