"""Who is calling: the key presented in the headers, and the first policy of the request path."""

from __future__ import annotations

from typing import Mapping

from serving.engine.protocol import GenerateRequest
from serving.errors import AuthenticationError
from serving.core.context import RequestContext
from serving.core.result import RequestResult

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


class IdentityPolicy:
    """Who is calling, on the context: the key ``APIKeyMiddleware`` authenticated (its
    short id and tier, from the scope state), or with auth off the ``anonymous`` key.

    Authentication happens once, in the middleware, before the body is read. With auth
    on, a request that reaches a policy without an authenticated key is refused (deny by
    default: an app mounted without the middleware opens nothing).
    """

    name = "identity"

    def __init__(self, *, default_tier: str, require_key: bool) -> None:
        self.default_tier = default_tier
        self.require_key = require_key

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        if ctx.key_id is None:
            if self.require_key:
                raise AuthenticationError(MISSING_MESSAGE, code="missing_api_key")
            ctx.key_id = "anonymous"
        ctx.tier = ctx.tier or self.default_tier
        return None

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        return None
