"""The split topology's engine over a Serve handle: a model replica that dies mid-request, or
no running model replica at all, is a 503 — at once, not after Serve's router held the request."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from ray.exceptions import ActorDiedError, ActorUnavailableError

from serving.engine.protocol import GenerateRequest, ModelInfo, SamplingOptions
from serving.errors import ServiceUnavailableError
from serving.ray_serve.handle_engine import HandleEngine

INFO = ModelInfo(id="tiny", max_model_len=128, created=0)


class _DyingStream:
    """What ``handle.options(stream=True).generate.remote(...)`` returns when the replica dies."""

    def __init__(self, exc: BaseException, outputs_first: int = 0) -> None:
        self.exc = exc
        self.left = outputs_first
        self.cancelled = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.left:
            self.left -= 1
            return "output"
        raise self.exc

    def cancel(self) -> None:
        self.cancelled = True


class _Handle:
    def __init__(self, stream: _DyingStream) -> None:
        self.stream = stream
        self.generate = self
        self.remote = lambda request: stream

    def options(self, stream: bool):
        return self


@pytest.mark.parametrize("exc", [ActorDiedError(), ActorUnavailableError("unreachable", None)])
async def test_a_replica_that_dies_mid_stream_is_service_unavailable(exc) -> None:
    stream = _DyingStream(exc, outputs_first=2)
    engine = HandleEngine(_Handle(stream), INFO)
    request = GenerateRequest(request_id="r1", sampling=SamplingOptions(max_tokens=4), prompt="hi")
    got = []
    with pytest.raises(ServiceUnavailableError) as raised:
        async for out in engine.generate(request):
            got.append(out)
    assert got == ["output", "output"]
    assert raised.value.status_code == 503 and isinstance(raised.value.__cause__, type(exc))
    assert stream.cancelled


class _SilentStream(_DyingStream):
    """A request Serve's router holds: no output until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(RuntimeError("unused"))
        self.release = asyncio.Event()

    async def __anext__(self):
        await self.release.wait()
        if self.left == 0:
            self.left = -1
            return "late output"
        raise StopAsyncIteration


async def test_no_running_replica_is_a_503_at_the_next_check_not_a_wait() -> None:
    stream = _SilentStream()
    checks: list[float] = []

    async def none_running() -> bool:
        checks.append(time.monotonic())
        return False

    engine = HandleEngine(_Handle(stream), INFO, replicas_running=none_running, check_interval_s=0.05)
    request = GenerateRequest(request_id="r2", sampling=SamplingOptions(max_tokens=4), prompt="hi")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError):
        async for _ in engine.generate(request):
            pass
    assert time.monotonic() - started < 1.0 and len(checks) == 1
    assert stream.cancelled  # the held request is withdrawn from Serve's router


async def test_a_slow_first_output_is_awaited_while_a_replica_runs() -> None:
    stream = _SilentStream()
    checks: list[float] = []

    async def running() -> bool:
        checks.append(time.monotonic())
        if len(checks) == 3:
            stream.release.set()  # e.g. a long prefill ends
        return True

    engine = HandleEngine(_Handle(stream), INFO, replicas_running=running, check_interval_s=0.02)
    request = GenerateRequest(request_id="r3", sampling=SamplingOptions(max_tokens=4), prompt="hi")
    assert [out async for out in engine.generate(request)] == ["late output"]
    assert len(checks) >= 3 and not stream.cancelled


class _HeldCall:
    """A non-streaming handle call Serve's router holds (``tokenize``)."""

    def __init__(self) -> None:
        self.cancelled = False

    def __await__(self):
        return asyncio.get_running_loop().create_future().__await__()  # never answered

    def cancel(self) -> None:
        self.cancelled = True


class _Answered:
    """A non-streaming handle call that answers ``value`` (a list, as it arrives over Ray)."""

    def __init__(self, value) -> None:
        self.value = value

    def __await__(self):
        async def answer():
            return self.value

        return answer().__await__()

    def cancel(self) -> None:
        pass


def _method(calls: list, answer):
    return type("M", (), {"remote": staticmethod(lambda request: calls.append(request) or answer())})()


@pytest.mark.parametrize("count", [False, True], ids=["tokenize", "count_prompt_tokens"])
async def test_tokenizing_does_not_wait_out_a_missing_replica(count: bool) -> None:
    call = _HeldCall()
    handle = _Handle(_SilentStream())
    handle.tokenize = _method([], lambda: call)

    async def none_running() -> bool:
        return False

    engine = HandleEngine(handle, INFO, replicas_running=none_running, check_interval_s=0.05)
    request = GenerateRequest(request_id="r4", sampling=SamplingOptions(max_tokens=4), prompt="hi")
    with pytest.raises(ServiceUnavailableError):
        await asyncio.wait_for((engine.count_prompt_tokens if count else engine.tokenize)(request), 2)
    assert call.cancelled


async def test_tokenize_asks_the_model_replica_once_and_counts_reuse_carried_ids() -> None:
    calls: list[GenerateRequest] = []
    handle = _Handle(_SilentStream())
    handle.tokenize = _method(calls, lambda: _Answered([3, 4, 5]))
    engine = HandleEngine(handle, INFO)
    request = GenerateRequest(request_id="r5", sampling=SamplingOptions(max_tokens=4), prompt="a b c")
    assert await engine.tokenize(request) == (3, 4, 5)
    assert await engine.count_prompt_tokens(request) == 3 and len(calls) == 2
    carried = dataclasses.replace(request, prompt_token_ids=(3, 4, 5))
    assert await engine.count_prompt_tokens(carried) == 3 and len(calls) == 2  # no round trip
