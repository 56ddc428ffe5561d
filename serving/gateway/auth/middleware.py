"""An ASGI middleware that requires a known API key on every path but a few public ones.

Deny by default: every request needs a key unless the path *as the router sees it*
(``root_path`` stripped, see ``serving.core.routing``) is exactly one of the
public paths — health, readiness and the OpenAPI schema, for probes and tooling. A
route prefix, a doubled slash or an unknown path therefore cannot reach a route
unauthenticated. It runs before the body is read, so a client without a key never
holds the server waiting for its body.

This is the one place a key is checked. The identity it found (the short key id and the
key's tier, never the key) is left in the scope's state, where the request context of
every route picks it up (``serving.core.http.request_context``, ``RouteGuard``).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from serving.core.http import send_error_response
from serving.core.routing import route_path
from serving.errors import AuthenticationError
from serving.gateway.auth.keys import KeyStore
from serving.gateway.auth.policy import INVALID_MESSAGE, MISSING_MESSAGE, presented_key
from serving.core.context import AUTHENTICATED_KEY_ID, AUTHENTICATED_TIER
from serving.gateway.metrics import ALLOWED, DENIED, GatewayMetrics

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json"})


class APIKeyMiddleware:
    """Answers 401 (OpenAI error body) for every request without a known key, public paths aside."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyStore,
        metrics: GatewayMetrics,
        default_tier: str = "default",
        public_paths: frozenset[str] = PUBLIC_PATHS,
    ) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics
        self.default_tier = default_tier
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or route_path(scope) in self.public_paths:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        key = presented_key(headers)
        if key is None:
            error = AuthenticationError(MISSING_MESSAGE, code="missing_api_key")
            reason = "missing"
        elif (record := self.store.lookup(key)) is None:
            error = AuthenticationError(INVALID_MESSAGE)
            reason = "invalid"
        else:
            tier = record.tier or self.default_tier
            state = scope.setdefault("state", {})
            state[AUTHENTICATED_KEY_ID] = record.key_id
            state[AUTHENTICATED_TIER] = tier
            self.metrics.decision("auth", ALLOWED, tier=tier, key_id=record.key_id)
            await self.app(scope, receive, send)
            return
        self.metrics.decision("auth", DENIED, reason)
        await send_error_response(send, error, [(b"www-authenticate", b"Bearer")])
