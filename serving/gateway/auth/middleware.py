"""An ASGI middleware that requires a known API key on every ``/v1/`` route.

Generation routes are also checked by ``AuthPolicy`` (which puts the key id and tier
on the request context); this middleware covers the routes that do not run the
policies, such as ``GET /v1/models``. Health, readiness and the OpenAPI schema stay
open for probes and tooling.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from serving.api.common.http import send_error_response
from serving.errors import AuthenticationError
from serving.gateway.auth.keys import KeyStore
from serving.gateway.auth.policy import INVALID_MESSAGE, MISSING_MESSAGE, presented_key
from serving.gateway.metrics import DENIED, GatewayMetrics

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class APIKeyMiddleware:
    """Answers 401 (OpenAI error body) for ``/v1/`` requests without a known key."""

    def __init__(
        self, app: ASGIApp, *, store: KeyStore, metrics: GatewayMetrics, protected_prefix: str = "/v1/"
    ) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics
        self.protected_prefix = protected_prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.protected_prefix):
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
            # Routes outside the generation pipeline (feedback, ...) see who is calling.
            scope.setdefault("state", {})["key_id"] = record.key_id
            await self.app(scope, receive, send)
            return
        self.metrics.decision("auth", DENIED, reason)
        await send_error_response(send, error, [(b"www-authenticate", b"Bearer")])
