"""The gateway's policies around the routes that generate nothing: embeddings, moderations, feedback.

Chat and completions run the policies inside the generation pipeline. These routes cost
work too (a forward pass of the embedding model, a moderation scan, a database write),
so they pass the same gateway policies in the same order — auth, hygiene, per-key
limits, admission — and end the same way (every policy's ``after``, request metrics,
one log line). The policies see ``NO_GENERATION`` as the body: a key's requests per
minute and concurrency count, no tokens are reserved. A route uses it as::

    async with guard.run(request, route=ROUTE) as ctx:
        result = await service.do(body)
    return respond(result, ctx)  # carries the x-ratelimit-* headers
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

from fastapi import Request

from serving.core.pipeline import end_request
from serving.core.result import RequestResult
from serving.core.protocol import new_id
from serving.core.context import NO_GENERATION, RequestContext
from serving.core.http import context_of
from serving.core.hooks import RequestPolicy


class RouteGuard:
    """Runs ``policies`` before a non-generating route's work and ends the request after it."""

    def __init__(self, policies: Sequence[RequestPolicy] = ()) -> None:
        self.policies = tuple(policies)

    @asynccontextmanager
    async def run(self, request: Request, *, route: str) -> AsyncIterator[RequestContext]:
        """The request's context once every policy admitted it (a refusal raises here)."""
        metrics = getattr(request.app.state, "metrics", None)  # the app factory's RequestMetrics
        ctx = context_of(
            request,
            route=route,
            model=metrics.model_id if metrics is not None else "-",
            body=NO_GENERATION,
            response_id=new_id(route.rsplit("/", 1)[-1]),  # unique: the policies key their state by it
        )
        result = RequestResult(started=ctx.annotations.setdefault("started", time.monotonic()))
        if metrics is None:  # a router mounted outside the app factory (its own unit tests)
            if self.policies:
                raise RuntimeError("RouteGuard with policies needs the app factory's app.state.metrics")
            yield ctx
            return
        request.state.ctx = ctx  # the error handlers add ctx.response_headers (x-ratelimit-*)
        record = metrics.start(route)
        error: BaseException | None = None
        try:
            for policy in self.policies:
                await policy.before(ctx)  # nothing to rewrite: there is no engine request
            yield ctx
        except BaseException as exc:
            error = exc
            raise
        finally:
            await end_request(ctx, record, result, error, self.policies)
