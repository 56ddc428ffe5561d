"""Bounds on one request: messages, characters, and max_tokens against the context window."""

from __future__ import annotations

import dataclasses

from serving.engine.protocol import GenerateRequest
from serving.errors import ContextLengthExceededError, InvalidRequestError
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.gateway.metrics import CLAMPED, DENIED, GatewayMetrics
from serving.gateway.request_view import view_of
from serving.config.gateway import HygieneSettings


class HygienePolicy:
    """Refuses oversized requests (400) and lowers max_tokens to the configured cap."""

    name = "hygiene"

    def __init__(self, settings: HygieneSettings, *, max_model_len: int, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.max_model_len = max_model_len
        self.metrics = metrics

    def _refuse(self, ctx: RequestContext, reason: str, exc: InvalidRequestError) -> None:
        self.metrics.decision(self.name, DENIED, reason, tier=ctx.tier, key_id=ctx.key_id)
        raise exc

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        view = view_of(ctx)
        param = "messages" if view.messages else "prompt"
        if view.messages > self.settings.max_messages:
            self._refuse(ctx, "messages", InvalidRequestError(
                f"Too many messages: {view.messages} (at most {self.settings.max_messages}).",
                param="messages", code="too_many_messages",
            ))
        if view.chars > self.settings.max_chars:
            self._refuse(ctx, "chars", InvalidRequestError(
                f"The input is too long: {view.chars} characters (at most {self.settings.max_chars}).",
                param=param, code="input_too_long",
            ))
        if view.max_tokens is not None and view.max_tokens >= self.max_model_len:
            self._refuse(ctx, "max_tokens", ContextLengthExceededError(
                f"max_tokens is too large: {view.max_tokens}. This model's maximum context length is "
                f"{self.max_model_len} tokens (prompt + output).",
                param="max_tokens",
            ))
        return self._clamp(ctx, view.max_tokens)

    def _clamp(self, ctx: RequestContext, max_tokens: int | None) -> GenerateRequest | None:
        cap = self.settings.max_output_tokens
        gen = ctx.generate
        if cap is None or gen is None or (max_tokens is not None and max_tokens <= cap):
            return None
        self.metrics.decision(self.name, CLAMPED, "max_tokens", tier=ctx.tier, key_id=ctx.key_id)
        return dataclasses.replace(gen, sampling=dataclasses.replace(gen.sampling, max_tokens=cap))

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        return None
