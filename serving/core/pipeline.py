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
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Sequence

from serving.engine.protocol import Engine, GenerateOutput, GenerateRequest, TokenLogprob
from serving.core.result import CLIENT_CLOSED_STATUS, RequestResult
from serving.errors import EngineAbortedError, RequestTimeoutError, ServerError, ServingError
from serving.core.context import RequestContext
from serving.core.hooks import RequestObserver, RequestPolicy, StreamHook
from serving.observability.logging import log_request
from serving.observability.metrics import RequestMetrics, RequestRecord

request_log = logging.getLogger("serving.requests")
logger = logging.getLogger(__name__)


@dataclass
class CollectedChoices:
    """Every choice of a generation, whole: text, logprobs and finish reason by index."""

    texts: list[str]
    logprobs: list[list[TokenLogprob]]
    finish: list[str]


@dataclass
class Generation:
    """A started generation whose first output already arrived.

    ``outputs()`` hands the client every output and accumulates the ``RequestResult``
    as it goes (texts, finish reasons, usage, first-token time); the end of the
    request (``close``) reads only that result.
    """

    ctx: RequestContext
    record: RequestRecord
    first: GenerateOutput
    rest: AsyncIterator[GenerateOutput]
    pipeline: "GenerationPipeline"
    result: RequestResult
    _closed: bool = False

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens so far (the engine reports them with every output)."""
        return self.result.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        """Output tokens so far, all choices."""
        return self.result.completion_tokens

    async def outputs(self) -> AsyncIterator[GenerateOutput]:
        """Every output (the first included); ends the request when the stream ends.

        An engine-side abort (finish reason ``abort``) raises ``EngineAbortedError``
        here, inside the request, so it ends as the server error the client sees.
        """
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
        logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        async for out in self.outputs():
            for choice in out.choices:
                logprobs[choice.index].extend(choice.logprobs or ())
        texts = self.result.texts + [""] * (n - len(self.result.texts))
        finish = self.result.finish_reasons + [None] * (n - len(self.result.finish_reasons))
        return CollectedChoices(
            texts=[prefix + t for t in texts[:n]], logprobs=logprobs, finish=[f or "stop" for f in finish[:n]]
        )

    def _account(self, out: GenerateOutput) -> None:
        result = self.result
        result.outputs += 1
        result.prompt_tokens = out.prompt_tokens
        new_tokens = 0
        for choice in out.choices:
            if choice.finish_reason == "abort":
                raise EngineAbortedError("the engine aborted the generation")
            new_tokens += choice.num_tokens
            result.add_text(choice.index, choice.text, choice.finish_reason)
        if new_tokens:
            if result.first_token_at is None:  # the event the TTFT metric observes, too
                result.first_token_at = time.monotonic()
            result.completion_tokens += new_tokens
            self.record.tokens(new_tokens)

    async def close(self, error: BaseException | None = None) -> None:
        """End the request: close the engine stream, then record the result once."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.rest.aclose()  # aborts the engine request if it is still running
        finally:
            await self.pipeline.finish(self.ctx, self.record, self.result, error)


class GenerationPipeline:
    """Runs generations for one engine with the configured policies, hooks and observers."""

    def __init__(
        self,
        engine: Engine,
        *,
        policies: Sequence[RequestPolicy] = (),
        stream_hooks: Sequence[StreamHook] = (),
        observers: Sequence[RequestObserver] = (),
        metrics: RequestMetrics | None = None,
        request_timeout_s: float,
    ) -> None:
        self.engine = engine
        self.policies = tuple(policies)
        self.stream_hooks = tuple(stream_hooks)
        self.observers = tuple(observers)
        self.metrics = metrics or RequestMetrics(engine.info.id, version=engine.info.version)
        self.request_timeout_s = request_timeout_s

    async def start(self, ctx: RequestContext, build: Callable[[], GenerateRequest]) -> Generation:
        """Build the engine request, check policies, start the engine, await its first output."""
        record = self.metrics.start(ctx.route)
        result = RequestResult(started=ctx.annotations.setdefault("started", time.monotonic()))
        deadline = asyncio.get_running_loop().time() + self.request_timeout_s
        stream: AsyncIterator[GenerateOutput] | None = None
        try:
            # Policies that count tokens reach the engine's tokenizer through the context
            # (serving.core.tokens.prompt_token_ids caches the ids on ctx.generate; the engine
            # then feeds them without tokenizing again).
            ctx.tokenize = getattr(self.engine, "tokenize", None)
            ctx.generate = build()
            for policy in self.policies:
                replacement = await policy.before(ctx)
                if replacement is not None:
                    ctx.generate = replacement
            result.engine_started = True
            stream = _with_deadline(self.engine.generate(ctx.generate), deadline)
            for hook in self.stream_hooks:
                stream = hook.wrap(ctx, stream)
            first = await anext(stream)
        except BaseException as exc:
            if stream is not None:
                await _close_quietly(stream)
            error = _no_output(exc)
            await self.finish(ctx, record, result, error)
            if error is not exc:
                raise error from exc
            raise
        if first.queue_time_s is not None:
            record.queue_wait(first.queue_time_s)
        return Generation(ctx=ctx, record=record, first=first, rest=stream, pipeline=self, result=result)

    async def finish(
        self, ctx: RequestContext, record: RequestRecord, result: RequestResult, error: BaseException | None
    ) -> None:
        """Record the end of a request once: policies' after(), observers, metrics, one log line."""
        await end_request(ctx, record, result, error, self.policies, self.observers)


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
    result: RequestResult,
    error: BaseException | None,
    policies: Sequence[RequestPolicy],
    observers: Sequence[RequestObserver] = (),
) -> None:
    """The end of any request the policies saw (a generation or not): ``result`` gets its
    outcome, then every policy's after(), every observer, the request metrics and one log
    line read it; ``error`` is what the request failed with, if anything.

    Runs to completion even when the request's task is cancelled (the client left while
    its end was being recorded): a limiter release or admission slot is never lost.
    """
    result.end(error, time.monotonic())
    status, outcome = result.status, result.outcome
    if status == CLIENT_CLOSED_STATUS:
        record.disconnected()
    if isinstance(error, ServingError) and status >= 500:
        logger.error("request %s failed: %s", ctx.request_id, error.message)
    elif error is not None and not isinstance(error, (ServingError, asyncio.CancelledError, GeneratorExit)):
        logger.exception("request %s failed", ctx.request_id, exc_info=error)
    record.finish(
        status_code=status,
        outcome=outcome,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )
    ctx.annotations["outcome"] = outcome
    for policy in policies:
        try:
            await policy.after(ctx, result)
        except Exception:  # accounting must never break the response
            logger.exception("policy %s after() failed", type(policy).__name__)
    for observer in observers:
        try:
            observer.observe(ctx, result)
        except Exception:  # an observer must never break the response
            logger.exception("observer %s failed", type(observer).__name__)
    log_request(
        request_log,
        request_id=ctx.request_id,
        model=ctx.model,
        route=ctx.route,
        status_code=status,
        outcome=outcome,
        latency_s=result.latency_s,
        ttft_s=result.ttft_s,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        key_id=ctx.key_id,
        finish_reason=result.finish_reason,
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
