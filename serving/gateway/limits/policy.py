"""Per-key rpm / tpm / concurrency limits as a request policy (429 + OpenAI rate-limit headers).

Reservations: the prompt's exact token count (the engine's tokenization, done once per
request and cached on it: ``serving.core.tokens``; an estimate only where there is no
engine request) + the request's effective output limit per choice (its
``max_tokens``, else the model's default output cap, else what the context window
leaves), settled with the real usage when the request ends, a client abort included.
When the store cannot be reached the request gets a 503 ``limiter_unavailable``
(``fail_open: false``, the default) or passes unmetered (``fail_open: true``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from serving.engine.protocol import GenerateRequest, ModelInfo
from serving.errors import RateLimitError, ServiceUnavailableError
from serving.gateway.admission.policy import OVERLOADED_ANNOTATION
from serving.gateway.auth.keys import KeyStore
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.core.tokens import prompt_token_ids
from serving.gateway.limits.buckets import CONCURRENCY, REQUESTS, TOKENS, TOO_LARGE, Decision, Limits
from serving.gateway.limits.headers import duration, rate_limit_headers, retry_after
from serving.gateway.limits.store import Limiter, LimiterUnavailable
from serving.gateway.metrics import ALLOWED, DENIED, FAILED_CLOSED, FAILED_OPEN, GatewayMetrics
from serving.gateway.request_view import RequestView, view_of
from serving.config.gateway import LimitsSettings, TierLimits

log = logging.getLogger(__name__)

ANNOTATION = "rate_limit_reason"  # ctx.annotations key naming why a request was limited
UNAVAILABLE_RETRY_AFTER_S = 1
STORE_UNAVAILABLE = "store_unavailable"


class LimiterUnavailableError(ServiceUnavailableError):
    """The key's limits cannot be checked (the store is down or slow): 503, retry shortly."""

    code = "limiter_unavailable"
    public_message = "The rate limiter cannot check this request's limits right now. Retry shortly."


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
        model: ModelInfo | None = None,
    ) -> None:
        self.limiter = limiter
        self.resolver = resolver
        self.default_output_tokens = default_output_tokens  # only when the model is unknown
        self.fail_open = fail_open
        self.metrics = metrics
        self.model = model
        self._reservations: dict[str, tuple[str, str, int]] = {}  # response id -> key, reservation, prompt tokens
        self._settling: set[asyncio.Task] = set()

    def _output_tokens(self, ctx: RequestContext, view: RequestView, prompt: int) -> int:
        """The most output tokens one choice of this request may generate."""
        if self.model is None:
            return view.max_tokens if view.max_tokens is not None else self.default_output_tokens
        room = max(0, self.model.max_model_len - prompt)
        if ctx.generate is not None:
            return ctx.generate.sampling.output_tokens(room)
        if view.max_tokens is not None:
            return view.max_tokens
        cap = self.model.sampling_defaults.max_tokens
        return room if cap is None else min(cap, room)

    async def _tokens(self, ctx: RequestContext) -> tuple[int, int]:
        """(tokens to reserve, prompt tokens).

        The prompt is counted exactly: the engine's tokenization of ``ctx.generate``, cached
        on it, so the context policy and the engine reuse the ids (no second tokenization).
        The chars / 4 estimate is left for what has no engine request (the routes that
        generate nothing: ``NO_GENERATION``) or no tokenizer at hand. This policy runs
        before the context policy: if truncation later shrinks the prompt, the reservation
        is still the whole conversation's, and ``after`` settles it with the real usage.
        """
        view = view_of(ctx)
        ids = await prompt_token_ids(ctx)
        prompt = len(ids) if ids is not None else view.prompt_token_estimate()
        return prompt + self._output_tokens(ctx, view, prompt) * max(1, view.n), prompt

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        key = ctx.key_id or "anonymous"
        limits = self.resolver.limits_for(ctx.key_id, ctx.tier)
        if limits.is_unlimited():
            return None
        tokens, prompt = await self._tokens(ctx)
        started = time.perf_counter()
        try:
            decision = await self.limiter.acquire(key, limits, tokens, request_id=ctx.response_id)
        except LimiterUnavailable as exc:
            return self._unavailable(ctx, exc)
        finally:
            self.metrics.limiter_check(time.perf_counter() - started, self.limiter.name)
        headers = rate_limit_headers(decision)
        ctx.response_headers.update(headers)
        if decision.allowed:
            assert decision.reservation is not None
            self._reservations[ctx.response_id] = (key, decision.reservation, prompt)
            self.metrics.decision(self.name, ALLOWED, tier=ctx.tier, key_id=ctx.key_id)
            return None
        reason = decision.reason or CONCURRENCY
        ctx.annotations[ANNOTATION] = reason
        self.metrics.decision(self.name, DENIED, reason, tier=ctx.tier, key_id=ctx.key_id)
        headers["retry-after"] = retry_after(decision.retry_after_s)
        ctx.response_headers["retry-after"] = headers["retry-after"]
        raise RateLimitError(_message(decision, tokens), headers=headers)

    def _unavailable(self, ctx: RequestContext, exc: LimiterUnavailable) -> None:
        """The store did not answer: admit unmetered (fail open) or refuse with a 503 (fail closed)."""
        action = FAILED_OPEN if self.fail_open else FAILED_CLOSED
        log.warning("request %s: rate limiter %s unavailable, %s (%s)", ctx.request_id, self.limiter.name, action, exc)
        self.metrics.limiter_unavailable(self.limiter.name, "acquire", action)
        self.metrics.decision(self.name, action, STORE_UNAVAILABLE, tier=ctx.tier, key_id=ctx.key_id)
        if self.fail_open:
            return None
        retry = {"retry-after": str(UNAVAILABLE_RETRY_AFTER_S)}
        ctx.response_headers.update(retry)
        raise LimiterUnavailableError(
            f"rate limiter {self.limiter.name} unavailable: {exc}", headers=retry
        ) from exc

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        """Settle the reservation with the real usage (on abort: what was generated so far).

        The release runs in its own task: a request that ends because its client went
        away is being cancelled, and a cancelled await must not lose the release (the
        slot would stay taken until ``lease_s``) nor cut the other policies' ``after``.
        """
        held = self._reservations.pop(ctx.response_id, None)
        if held is None:
            return
        key, reservation, prompt_reserved = held
        prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
        if prompt_tokens == 0 and ctx.annotations.get("outcome") == "aborted":
            prompt_tokens = prompt_reserved  # the client left before the first output: the prompt was sent
        release = asyncio.ensure_future(
            self._release(ctx, key, reservation, prompt_tokens + completion_tokens, refused_for_overload(ctx))
        )
        self._settling.add(release)
        release.add_done_callback(self._settling.discard)
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            return  # the request was cancelled (client gone): any await here would be cut; no need to wait
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            # Cancelled while settling: this runs from the request's cleanup, so the release
            # goes on in its own task and is not re-raised here, or the other policies'
            # end-of-request work (admission's slot, ...) would be skipped.
            log.debug("request %s: rate limit release continues in the background", ctx.request_id)

    async def _release(
        self, ctx: RequestContext, key: str, reservation: str, actual_tokens: int, refund_request: bool
    ) -> None:
        try:
            await self.limiter.release(key, reservation, actual_tokens, refund_request=refund_request)
        except LimiterUnavailable as exc:  # the lease expires on its own
            self.metrics.limiter_unavailable(self.limiter.name, "release", "lease_expires")
            log.warning("request %s: rate limiter release failed (%s)", ctx.request_id, exc)
