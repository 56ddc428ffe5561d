"""One measured request against the scripted server: TTFT, chunks, usage, errors."""

from __future__ import annotations

import socket
import time

import pytest

from loadtests.client import OpenAIClient, RequestResult
from loadtests.workloads import RequestSpec

# Lower bounds are exact (the server never answers early); upper bounds leave room for
# a shared 2-core box stalling this process.
LATE_S = 0.1


def chat(text: str, max_tokens: int = 16) -> RequestSpec:
    return RequestSpec("chat", max_tokens, messages=[{"role": "user", "content": text}])


async def measure(url: str, spec: RequestSpec, **client_args) -> RequestResult:
    result = RequestResult("t", 0, 0, time.perf_counter())
    async with OpenAIClient(url, "scripted", **client_args) as client:
        result.start = time.perf_counter()
        await client.send(spec, result, keep_text=True)
    return result


async def test_streamed_request_timings_match_the_script(server) -> None:
    r = await measure(server.url, chat("#script ttft_ms=60 itl_ms=15 tokens=5"))
    assert r.ok and r.status == 200
    assert 0.060 <= r.ttft < 0.060 + LATE_S  # the role-only chunk does not count
    assert len(r.chunk_times) == 5
    for k, t in enumerate(r.chunk_times):  # chunk k is due 60 + 15k ms after the request
        assert 0.060 + 0.015 * k <= t - r.start < 0.060 + 0.015 * k + LATE_S
    assert r.mean_itl == pytest.approx((r.chunk_times[-1] - r.chunk_times[0]) / 4)
    assert r.output_tokens == 5 and r.tokens_from_usage and r.prompt_tokens == 10
    assert r.tpot == pytest.approx((r.end - r.first_token) / 4)
    assert 0.120 <= r.e2e < 0.120 + LATE_S
    assert r.text == "tok0 tok1 tok2 tok3 tok4 "


async def test_the_request_asks_for_usage_in_the_stream(server) -> None:
    await measure(server.url, chat("#script tokens=1"))
    assert server.server.log[-1].script.tokens == 1  # the server parsed the directive


async def test_without_usage_tokens_are_counted_from_chunks(server) -> None:
    r = await measure(server.url, chat("#script tokens=7 itl_ms=1 usage=0"))
    assert r.ok and r.output_tokens == 7 and not r.tokens_from_usage


async def test_http_error_records_status_and_body(server) -> None:
    r = await measure(server.url, chat("#script status=503"))
    assert not r.ok and r.status == 503 and r.error_kind == "http_503"
    assert "scripted status 503" in r.error


async def test_error_event_inside_the_stream(server) -> None:
    r = await measure(server.url, chat("#script tokens=6 error_after=3"))
    assert not r.ok and r.error_kind == "stream_error" and "scripted stream error" in r.error
    assert len(r.chunk_times) == 3


async def test_completions_endpoint_is_measured(server) -> None:
    spec = RequestSpec("completions", 16, prompt="#script ttft_ms=30 tokens=4")
    r = await measure(server.url, spec)
    assert r.ok and len(r.chunk_times) == 4 and 0.030 <= r.ttft < 0.030 + LATE_S


async def test_non_streamed_request_has_only_end_to_end(server) -> None:
    r = await measure(server.url, chat("#script ttft_ms=30 itl_ms=10 tokens=3"), stream=False)
    assert r.ok and r.ttft is None and r.chunk_times == []
    assert r.output_tokens == 3 and 0.050 <= r.e2e < 0.050 + LATE_S


async def test_timeout_is_an_error_not_an_exception(server) -> None:
    r = await measure(server.url, chat("#script ttft_ms=700"), timeout_s=0.2)
    assert not r.ok and r.error_kind == "timeout"


async def test_connection_refused_is_an_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = await measure(f"http://127.0.0.1:{port}/v1", chat("hi"))
    assert not r.ok and r.error_kind == "connection" and r.status == 0


async def test_list_models(server) -> None:
    async with OpenAIClient(server.url, "") as client:
        assert await client.list_models() == ["scripted"]
