"""The split topology's engine over a Serve handle: a model replica that dies mid-request is a 503."""

from __future__ import annotations

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
