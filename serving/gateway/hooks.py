"""Where gateway policies plug into the request path.

The OpenAI serving layer runs every ``RequestPolicy`` before the engine sees a
request (auth, limits, admission, input moderation, context policy) and wraps the
engine's output stream with every ``StreamHook`` (output moderation, accounting).
Policies raise ``serving.errors.ClientError`` subclasses to refuse a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Protocol

from serving.engine.protocol import GenerateOutput, GenerateRequest

# Headers that carry an API key: never kept on a RequestContext.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
# Where the API key middleware leaves the short id of the key it accepted (ASGI scope state).
AUTHENTICATED_KEY_ID = "key_id"


def without_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` (names lowercased) without the ones that carry an API key."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


@dataclass
class RequestContext:
    """What policies may read and annotate about one request (no raw key is kept).

    ``headers`` never holds ``CREDENTIAL_HEADERS``; who is calling is ``key_id``, set
    from the API key middleware's scope state or by ``AuthPolicy``.
    """

    request_id: str  # the client's x-request-id, or a new one; echoed and logged
    response_id: str  # the unique id of the response (chatcmpl-..., cmpl-...), the engine's request id
    route: str  # the route template, e.g. "/v1/chat/completions"
    model: str
    headers: Mapping[str, str]  # without CREDENTIAL_HEADERS
    body: Any  # the validated wire model
    generate: GenerateRequest | None = None  # set once the engine request is built
    key_id: str | None = None  # a short, non-secret id of the API key
    tier: str | None = None
    # Extra headers policies want on the response (e.g. x-ratelimit-*).
    response_headers: dict[str, str] = field(default_factory=dict)
    # Free-form facts for logs/feedback (bounded values only: no text).
    annotations: dict[str, Any] = field(default_factory=dict)


class RequestPolicy(Protocol):
    """A check before the engine; may raise a ClientError, may annotate the context."""

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        """Refuse by raising; return a replacement GenerateRequest to rewrite it, or None."""
        ...

    async def after(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> None:
        """Called once when the request ends (any outcome), with the real token usage."""
        ...


class StreamHook(Protocol):
    """Wraps the engine's output stream (e.g. to cut it on a moderation verdict)."""

    def wrap(
        self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]
    ) -> AsyncIterator[GenerateOutput]:
        """Return a stream that yields (possibly changed) outputs of ``stream``."""
        ...
