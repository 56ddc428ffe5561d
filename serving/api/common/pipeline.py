"""One generation through the request path: policies -> engine -> stream hooks -> accounting.

Both API surfaces (chat, completions) use it, so policy checks, deadlines, abort on
disconnect, metrics and request logs behave the same everywhere. ``start`` waits for
the engine's first output, so an error before it (context too long, overload, bad
parameters) still becomes a proper HTTP error instead of a broken 200 stream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Sequence

from serving.engine.protocol import ChoiceDelta, Engine, GenerateOutput, GenerateRequest, TokenLogprob
from serving.errors import RequestTimeoutError, ServerError, ServingError
from serving.gateway.hooks import RequestContext, RequestPolicy, StreamHook
from serving.observability.logging import log_request
from serving.observability.metrics import RequestMetrics, RequestRecord

request_log = logging.getLogger("serving.requests")
logger = logging.getLogger(__name__)

# Status recorded for a client that went away before the response ended (nginx's 499).
CLIENT_CLOSED_STATUS = 499


def outcome_for(exc: BaseException | None) -> tuple[int, str]:
    """The (HTTP status, bounded outcome label) a request ended with."""
    if exc is None:
        return 200, "ok"
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return CLIENT_CLOSED_STATUS, "aborted"
    if isinstance(exc, ServingError):
        code = exc.code or exc.error_type
        if exc.status_code == 429:
            return 429, "overloaded" if code == "overloaded" else "rate_limited"
        if code == "content_filter":
            return exc.status_code, "content_filter"
        if exc.status_code == 504:
            return 504, "timeout"
        return exc.status_code, "client_error" if exc.status_code < 500 else "server_error"
    return 500, "server_error"


def finish_reason(choice: ChoiceDelta) -> str | None:
    """The OpenAI finish reason of a delta; an engine-side abort is a server error."""
    if choice.finish_reason == "abort":
        raise ServerError("the engine aborted the generation")
    return choice.finish_reason


@dataclass
class CollectedChoices:
    """Every choice of a generation, whole: text, logprobs and finish reason by index."""

    texts: list[str]
    logprobs: list[list[TokenLogprob]]
    finish: list[str]


@dataclass
class Generation:
    """A started generation whose first output already arrived."""

    ctx: RequestContext
    record: RequestRecord
    first: GenerateOutput
    rest: AsyncIterator[GenerateOutput]
    pipeline: "GenerationPipeline"
    started: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reasons: dict[int, str] = field(default_factory=dict)
    _closed: bool = False

    async def outputs(self) -> AsyncIterator[GenerateOutput]:
        """Every output (the first included); ends the accounting when the stream ends."""
        error: BaseException | None = None
        try:
            self._account(self.first)
            yield self.first
            async for out in self.rest:
                self._account(out)
                yield out
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self.close(error)

    async def collect(self, n: int, prefix: str = "") -> CollectedChoices:
        """Run the generation to its end and gather its ``n`` choices (each after ``prefix``)."""
        collected = CollectedChoices(texts=[prefix] * n, logprobs=[[] for _ in range(n)], finish=["stop"] * n)
        async for out in self.outputs():
            for choice in out.choices:
                collected.texts[choice.index] += choice.text
                collected.logprobs[choice.index].extend(choice.logprobs or ())
                reason = finish_reason(choice)
                if reason is not None:
                    collected.finish[choice.index] = reason
        return collected

    def _account(self, out: GenerateOutput) -> None:
        self.prompt_tokens = out.prompt_tokens
        new_tokens = 0
        for choice in out.choices:
            new_tokens += choice.num_tokens
            if choice.finish_reason is not None:
                self.finish_reasons[choice.index] = choice.finish_reason
        if new_tokens:
            self.completion_tokens += new_tokens
            self.record.tokens(new_tokens)

    async def close(self, error: BaseException | None = None) -> None:
        """End the request: close the engine stream, run policies' after(), record metrics."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.rest.aclose()  # aborts the engine request if it is still running
        finally:
            await self.pipeline.finish(
                self.ctx,
                self.record,
                error,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                finish_reason=_summary(self.finish_reasons),
            )


class GenerationPipeline:
    """Runs generations for one engine with the configured policies and hooks."""

    def __init__(
        self,
        engine: Engine,
        *,
        policies: Sequence[RequestPolicy] = (),
        stream_hooks: Sequence[StreamHook] = (),
        metrics: RequestMetrics | None = None,
        request_timeout_s: float = 600.0,
    ) -> None:
        self.engine = engine
        self.policies = tuple(policies)
        self.stream_hooks = tuple(stream_hooks)
        self.metrics = metrics or RequestMetrics(engine.info.id, version=engine.info.version)
        self.request_timeout_s = request_timeout_s

    async def start(self, ctx: RequestContext, build: Callable[[], GenerateRequest]) -> Generation:
        """Build the engine request, check policies, start the engine, await its first output."""
        record = self.metrics.start(ctx.route)
        ctx.annotations.setdefault("started", time.monotonic())
        deadline = asyncio.get_running_loop().time() + self.request_timeout_s
        stream: AsyncIterator[GenerateOutput] | None = None
        try:
            ctx.generate = build()
            for policy in self.policies:
                replacement = await policy.before(ctx)
                if replacement is not None:
                    ctx.generate = replacement
            stream = _with_deadline(self.engine.generate(ctx.generate), deadline)
            for hook in self.stream_hooks:
                stream = hook.wrap(ctx, stream)
            first = await anext(stream)
        except BaseException as exc:
            if stream is not None:
                await _close_quietly(stream)
            error = _no_output(exc)
            await self.finish(ctx, record, error, prompt_tokens=0, completion_tokens=0)
            if error is not exc:
                raise error from exc
            raise
        if first.queue_time_s is not None:
            record.queue_wait(first.queue_time_s)
        return Generation(ctx=ctx, record=record, first=first, rest=stream, pipeline=self)

    async def finish(
        self,
        ctx: RequestContext,
        record: RequestRecord,
        error: BaseException | None,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        finish_reason: str | None = None,
    ) -> None:
        """Record the end of a request once: policies' after(), metrics, one log line."""
        await end_request(
            ctx,
            record,
            error,
            self.policies,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish_reason,
        )


def _runs_to_completion(fn):
    """Decorate a coroutine function so a cancelled caller does not cut it short."""

    @functools.wraps(fn)
    async def shielded(*args, **kwargs):
        ending = asyncio.ensure_future(fn(*args, **kwargs))
        ending.add_done_callback(_log_unexpected)
        await asyncio.shield(ending)

    return shielded


def _log_unexpected(task: "asyncio.Future[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("recording the end of a request failed", exc_info=task.exception())


@_runs_to_completion
async def end_request(
    ctx: RequestContext,
    record: RequestRecord,
    error: BaseException | None,
    policies: Sequence[RequestPolicy],
    *,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str | None = None,
) -> None:
    """The end of any request the policies saw (a generation or not): every policy's after(),
    the request metrics and one log line; ``error`` is what it failed with, if anything.

    Runs to completion even when the request's task is cancelled (the client left while
    its end was being recorded): a limiter release or admission slot is never lost.
    """
    status, outcome = outcome_for(error)
    if status == CLIENT_CLOSED_STATUS:
        record.disconnected()
    if isinstance(error, ServingError) and status >= 500:
        logger.error("request %s failed: %s", ctx.request_id, error.message)
    elif error is not None and not isinstance(error, (ServingError, asyncio.CancelledError, GeneratorExit)):
        logger.exception("request %s failed", ctx.request_id, exc_info=error)
    record.finish(
        status_code=status,
        outcome=outcome,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
    ctx.annotations["outcome"] = outcome
    for policy in policies:
        try:
            await policy.after(ctx, prompt_tokens, completion_tokens)
        except Exception:  # accounting must never break the response
            logger.exception("policy %s after() failed", type(policy).__name__)
    started = ctx.annotations.get("started", record.start)
    ttft = None if record.first_token_at is None else record.first_token_at - record.start
    log_request(
        request_log,
        request_id=ctx.request_id,
        model=ctx.model,
        route=ctx.route,
        status_code=status,
        outcome=outcome,
        latency_s=time.monotonic() - started,
        ttft_s=ttft,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        key_id=ctx.key_id,
        finish_reason=finish_reason,
    )


async def _with_deadline(stream: AsyncIterator[GenerateOutput], deadline: float) -> AsyncIterator[GenerateOutput]:
    """``stream`` that raises RequestTimeoutError once the loop time passes ``deadline``."""
    iterator = aiter(stream)
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    out = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise RequestTimeoutError("generation deadline exceeded") from exc
            yield out
    finally:
        await _close_quietly(iterator)


async def _close_quietly(stream: AsyncIterator[GenerateOutput]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            logger.exception("closing an engine stream failed")


def _no_output(exc: BaseException) -> BaseException:
    if isinstance(exc, StopAsyncIteration):
        return ServerError("the engine produced no output")
    return exc


def _summary(reasons: dict[int, str]) -> str | None:
    """One finish reason for the log line: the first choice's."""
    return reasons.get(0) if reasons else None
