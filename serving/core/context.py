"""What one request is while it runs: the context every policy and hook reads and annotates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from serving.engine.protocol import GenerateRequest

# The engine's ``tokenize``: a request's prompt token ids as the engine will feed them.
Tokenize = Callable[[GenerateRequest], Awaitable[tuple[int, ...]]]

# Headers that carry an API key: never kept on a RequestContext.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
# Where the API key middleware leaves the short id of the key it accepted (ASGI scope state).
AUTHENTICATED_KEY_ID = "key_id"
# ... and the tier of that key.
AUTHENTICATED_TIER = "key_tier"


def without_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` (names lowercased) without the ones that carry an API key."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


@dataclass
class RequestContext:
    """What policies may read and annotate about one request (no raw key is kept).

    ``headers`` never holds ``CREDENTIAL_HEADERS``; who is calling is ``key_id``, set
    once, by the API key middleware (scope state) or, without auth, left None.
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
    # The engine's tokenizer, set by the generation pipeline before the policies run (None
    # on routes that generate nothing). Policies do not call it directly: they ask
    # ``serving.core.tokens.prompt_token_ids(ctx)``, which tokenizes ``generate`` once and
    # caches the ids on it, so the policies after and the engine reuse them.
    tokenize: Tokenize | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NoGeneration:
    """The body the policies see on a route that generates nothing (embeddings, moderations,
    feedback): no messages, no prompt, no output tokens. Per-key request and concurrency
    limits and admission still apply; no tokens are reserved."""

    max_tokens: int = 0
    n: int = 1


NO_GENERATION = NoGeneration()
