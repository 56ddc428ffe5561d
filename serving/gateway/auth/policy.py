"""The API key check: the first policy of the request path."""

from __future__ import annotations

import logging
from typing import Mapping

from serving.engine.protocol import GenerateRequest
from serving.errors import AuthenticationError
from serving.gateway.auth.keys import KeyStore
from serving.gateway.hooks import RequestContext, without_credentials
from serving.gateway.metrics import ALLOWED, DENIED, GatewayMetrics

log = logging.getLogger(__name__)

MISSING_MESSAGE = (
    "You didn't provide an API key. Send it in the Authorization header as "
    "'Authorization: Bearer YOUR_KEY'."
)
INVALID_MESSAGE = "Incorrect API key provided."


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in ``Authorization: Bearer KEY`` (or ``api-key`` / ``x-api-key``), if any."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization", "").strip()
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    for name in ("api-key", "x-api-key"):
        if lowered.get(name, "").strip():
            return lowered[name].strip()
    return None


class AuthPolicy:
    """Refuses requests without a known key (401); sets ``ctx.key_id`` and ``ctx.tier``.

    Behind ``APIKeyMiddleware`` the context carries no key, only the id of the key the
    middleware accepted: the policy re-checks that id against the store (a key disabled
    by a reload in between is refused). A context that still holds the key headers is
    checked from them, and loses them.
    """

    name = "auth"

    def __init__(self, store: KeyStore, *, default_tier: str, metrics: GatewayMetrics) -> None:
        self.store = store
        self.default_tier = default_tier
        self.metrics = metrics

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        key = presented_key(ctx.headers)
        if key is not None:
            ctx.headers = without_credentials(ctx.headers)  # the key never stays on the context
            record = self.store.lookup(key)
        elif ctx.key_id is not None:  # accepted by APIKeyMiddleware
            record = self.store.by_id(ctx.key_id)
            record = None if record is None or record.disabled else record
        else:
            self.metrics.decision(self.name, DENIED, "missing")
            raise AuthenticationError(MISSING_MESSAGE, code="missing_api_key")
        if record is None:
            ctx.key_id = None
            self.metrics.decision(self.name, DENIED, "invalid")
            log.info("request %s refused: unknown API key", ctx.request_id)
            raise AuthenticationError(INVALID_MESSAGE)
        ctx.key_id = record.key_id
        ctx.tier = record.tier or self.default_tier
        self.metrics.decision(self.name, ALLOWED, tier=ctx.tier, key_id=ctx.key_id)
        return None

    async def after(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> None:
        return None


class AnonymousPolicy:
    """With auth off: every request is the ``anonymous`` key in the default tier."""

    name = "anonymous"

    def __init__(self, *, default_tier: str) -> None:
        self.default_tier = default_tier

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        ctx.key_id = ctx.key_id or "anonymous"
        ctx.tier = ctx.tier or self.default_tier
        return None

    async def after(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> None:
        return None
