"""Where features plug into the request path: policies, stream hooks, end-of-request observers.

The pipeline runs every ``RequestPolicy.before`` before the engine sees a request
(auth, limits, admission, context, input moderation), wraps the engine's output
stream with every ``StreamHook`` (output moderation), and when the request ends,
whatever the outcome, hands one ``RequestResult`` to every policy's ``after`` and to
every ``RequestObserver`` (feedback, audit). Policies raise
``serving.errors.ClientError`` subclasses to refuse a request.
"""

from __future__ import annotations

from typing import AsyncIterator, Protocol

from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.engine.protocol import GenerateOutput, GenerateRequest


class RequestPolicy(Protocol):
    """A check before the engine; may raise a ClientError, may annotate the context."""

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        """Refuse by raising; return a replacement GenerateRequest to rewrite it, or None."""
        ...

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        """Called once when the request ends (any outcome), with what it produced."""
        ...


class StreamHook(Protocol):
    """Wraps the engine's output stream (e.g. to cut it on a moderation verdict)."""

    def wrap(
        self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]
    ) -> AsyncIterator[GenerateOutput]:
        """Return a stream that yields (possibly changed) outputs of ``stream``."""
        ...


class RequestObserver(Protocol):
    """Reads a finished request once (feedback metadata, audit log); never changes it."""

    def observe(self, ctx: RequestContext, result: RequestResult) -> None:
        """Record ``result``; must not block (hand slow work to a writer thread) nor raise."""
        ...
