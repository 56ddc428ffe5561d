"""An Engine that lives in another Serve deployment, reached through a DeploymentHandle.

Used by the split topology: the ingress deployment serves HTTP and streams deltas
from the model deployment with ``handle.options(stream=True)``.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from serving.engine.protocol import EngineLoad, GenerateOutput, GenerateRequest, ModelInfo
from serving.errors import OverloadedError, ServiceUnavailableError, ServingError


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


class HandleEngine:
    """``serving.engine.protocol.Engine`` over a model deployment's handle."""

    def __init__(self, handle: Any, info: ModelInfo) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)
        self._info = info
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

    async def count_prompt_tokens(self, request: GenerateRequest) -> int:
        """Prompt tokens as the model replica's tokenizer counts them."""
        return await self._handle.count_prompt_tokens.remote(request)

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
