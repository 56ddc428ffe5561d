"""An Engine that lives in another Serve deployment, reached through a DeploymentHandle.

Used by the split topology: the ingress deployment serves HTTP and streams deltas
from the model deployment with ``handle.options(stream=True)``. A model replica that
dies mid-request, or no model replica running at all (the only one died and its
replacement is loading), is a 503 at once: the client never waits out a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from serving.engine.protocol import Detokenized, EngineLoad, GenerateOutput, GenerateRequest, ModelInfo
from serving.errors import OverloadedError, ServiceUnavailableError, ServingError

logger = logging.getLogger(__name__)

# A first output slower than this: ask whether any model replica is running at all.
AVAILABILITY_CHECK_S = 2.0
STATUS_CACHE_S = 1.0  # how long one answer of Serve's controller is reused
# Whether the model deployment has a running replica (False: answer 503 now, do not wait).
ReplicasRunning = Callable[[], Awaitable[bool]]
_END = object()  # a stream that ended before its first output


def serve_replicas_running(handle: Any) -> ReplicasRunning:
    """Asks Serve's controller whether ``handle``'s deployment has a RUNNING replica.

    Serve's router holds a request while its deployment has no replica (the only one
    died and its replacement is still loading the model), and re-sends a request whose
    replica died before answering: without this check such requests would wait for
    minutes. An unanswered check counts as running (the request keeps waiting).
    """

    def running() -> bool:
        from ray import serve

        try:
            app, deployment = handle.app_name, handle.deployment_name
            states = serve.status().applications[app].deployments[deployment].replica_states
        except Exception as exc:  # the controller is busy or restarting: do not give up on the request
            logger.warning("could not read the model deployment's status: %s", type(exc).__name__)
            return True
        return sum(n for state, n in states.items() if str(getattr(state, "value", state)) == "RUNNING") > 0

    last: dict[str, Any] = {"at": float("-inf"), "running": True}

    async def check() -> bool:
        # One controller call per second at most, however many requests are waiting.
        now = time.monotonic()
        if now - last["at"] >= STATUS_CACHE_S:
            last["running"] = await asyncio.to_thread(running)
            last["at"] = time.monotonic()
        return bool(last["running"])

    return check


def _translate(exc: BaseException) -> BaseException:
    """Ray wraps exceptions raised in the model replica; unwrap ours, map Serve's."""
    from ray.exceptions import RayActorError, RayTaskError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, ServingError):
        return exc.cause
    if isinstance(exc, BackPressureError):
        return OverloadedError("The model is at capacity. Retry after a short wait.", headers={"Retry-After": "1"})
    if isinstance(exc, DeploymentUnavailableError):
        return ServiceUnavailableError("no model replica is available")
    if isinstance(exc, RayActorError):  # the model replica died (or is unreachable) mid-request
        return ServiceUnavailableError(f"the model replica is gone: {type(exc).__name__}")
    return exc


async def _resolved(response: Any) -> Any:
    """A ``DeploymentResponse``'s result, as a coroutine (``asyncio.ensure_future`` takes it)."""
    return await response


class HandleEngine:
    """``serving.engine.protocol.Engine`` over a model deployment's handle."""

    def __init__(
        self,
        handle: Any,
        info: ModelInfo,
        *,
        replicas_running: ReplicasRunning | None = None,
        check_interval_s: float = AVAILABILITY_CHECK_S,
    ) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)
        self._info = info
        self._replicas_running = replicas_running
        self._check_interval_s = check_interval_s
        self._load = EngineLoad(running=0, waiting=0, max_running=1)

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def start(self) -> None:
        await self.check_health()

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateOutput]:
        responses = self._stream.generate.remote(request)
        finished = False
        try:
            first = await self._first_output(responses)
            if first is _END:
                finished = True
                return
            yield first
            async for out in responses:
                yield out
            finished = True
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if not finished:
                responses.cancel()  # the model replica aborts the engine request

    async def _first_output(self, responses: Any) -> Any:
        """The stream's first output (or ``_END``); 503 as soon as no model replica is running."""
        try:
            return await self._answer(responses.__anext__())
        except StopAsyncIteration:
            return _END

    async def _answer(self, answer: Awaitable[Any]) -> Any:
        """``answer`` (a handle call's result), checking every ``check_interval_s`` while it is
        not there that a model replica runs at all: if none does, 503 now (the caller cancels)."""
        pending = asyncio.ensure_future(answer)
        interval = self._check_interval_s if self._replicas_running is not None else None
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=interval)
                if done:
                    return pending.result()
                assert self._replicas_running is not None
                if not await self._replicas_running():
                    raise ServiceUnavailableError("no model replica is running")
        finally:
            if not pending.done():
                pending.cancel()

    async def tokenize(self, request: GenerateRequest) -> tuple[int, ...]:
        """Prompt token ids from the model replica's tokenizer (the request path asks once per
        chat request, before the engine: it must not wait out a missing replica either).
        The ids travel back with the request to ``generate``, which does not tokenize again."""
        return tuple(await self._unary(self._handle.tokenize.remote(request)))

    async def detokenize(self, token_ids: tuple[int, ...]) -> Detokenized:
        """Text and token strings from the model replica's tokenizer."""
        return await self._unary(self._handle.detokenize.remote(tuple(token_ids)))

    async def _unary(self, response: Any) -> Any:
        """The answer of one unary handle call, within the wait for a replica; errors translated."""
        try:
            return await self._answer(_resolved(response))
        except Exception as exc:
            response.cancel()
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def count_prompt_tokens(self, request: GenerateRequest) -> int:
        """The request's carried ids' length, else ``len(await tokenize(request))``."""
        if request.prompt_token_ids is not None:
            return len(request.prompt_token_ids)
        return len(await self.tokenize(request))

    async def abort(self, request_id: str) -> None:
        await self._handle.abort.remote(request_id)

    async def check_health(self) -> None:
        try:
            await self._handle.check_health.remote()
        except Exception as exc:
            raise ServiceUnavailableError("model deployment unhealthy") from exc

    def load(self) -> EngineLoad:
        return self._load

    async def shutdown(self) -> None:
        """The model deployment owns the engine: nothing to stop here."""
