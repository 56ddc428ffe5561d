"""The many-clients tool against a small local OpenAI-style server: outcomes, retries, 5xx,
deadline and verdict.

The server (aiohttp, 127.0.0.1, its own thread and loop) answers every chat completion
with a stream ending in ``finish_reason: length``; ``refuse`` makes its next N answers an
error status (with ``Retry-After``), ``hold_s`` delays the first token and ``break_after``
ends streams with an in-stream error event.
"""

from __future__ import annotations

import asyncio
import json
import resource
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web

from loadtests.many_clients import api_root, main, raise_open_file_limit
from tests.unit.loadtests.background import serving_in_thread

TOKENS = 6


class ChatServer:
    """Streams ``TOKENS`` tokens per chat completion unless told to refuse or break."""

    def __init__(self) -> None:
        self.url = ""
        self.reset()
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_get("/health", self.health)

    def reset(self) -> None:
        """Serve every request normally again, counters at zero."""
        self.refuse: list[int] = []  # statuses of the next answers, consumed one per request
        self.retry_after: str | None = "0.1"
        self.plain_text = False  # refuse with a text body instead of OpenAI's error JSON
        self.hold_s = 0.0
        self.hold_until_in_flight: int | None = None  # hold (up to hold_s) until this many are streaming
        self.break_after: int | None = None
        self.healthy = True
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok", status=200 if self.healthy else 503)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        if self.refuse:
            status = self.refuse.pop(0)
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            if self.plain_text:
                return web.Response(text=f"dropped {status}", status=status, headers=headers)
            return web.json_response({"error": {"message": f"refused {status}", "type": "test",
                                                "param": None, "code": None}},
                                     status=status, headers=headers)
        if not body.get("stream"):
            return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": "OK"}}]})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._stream(request)
        finally:
            self.in_flight -= 1

    async def _hold(self) -> None:
        """Wait ``hold_s``; with ``hold_until_in_flight``, only until that many requests stream at
        once (a barrier: no timing guess about how fast the clients start)."""
        if self.hold_until_in_flight is None:
            await asyncio.sleep(self.hold_s)
            return
        deadline = asyncio.get_running_loop().time() + self.hold_s
        while self.max_in_flight < self.hold_until_in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_event(_chunk({"role": "assistant", "content": ""})))
        await self._hold()
        for i in range(TOKENS):
            if i == self.break_after:
                await response.write(_event({"error": {"message": "broken", "type": "test", "code": 500}}))
                break
            last = i == TOKENS - 1
            await response.write(_event(_chunk({"content": f"t{i} "}, "length" if last else None)))
        else:
            await response.write(_event({**_chunk({}), "choices": [], "usage": {
                "prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": 5 + TOKENS}}))
        await response.write(b"data: [DONE]\n\n")
        return response


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


@pytest.fixture(scope="module")
def running() -> Iterator[ChatServer]:
    server = ChatServer()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(server.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    with serving_in_thread(start) as port:
        server.url = f"http://127.0.0.1:{port}/v1"
        yield server


@pytest.fixture
def server(running: ChatServer) -> ChatServer:
    """The module's server, answering normally."""
    running.reset()
    return running


def run_tool(server: ChatServer, tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "many.json"
    code = main(["--base-url", server.url, "--model", "m", "--json", str(out), "--quiet",
                 "--health-timeout-s", "5", *args])
    return code, json.loads(out.read_text())


def test_all_clients_complete_and_the_run_passes(server: ChatServer, tmp_path: Path) -> None:
    server.hold_s, server.hold_until_in_flight = 30, 40  # each waits until all 40 stream at once
    code, summary = run_tool(server, tmp_path, "--clients", "40", "--max-tokens", "8")
    assert code == 0 and summary["passed"] and summary["failures"] == []
    assert summary["clients"] == 40 and summary["completed"] == 40 and summary["completed_ratio"] == 1.0
    assert summary["outcomes"] == {"completed": 40} and summary["finish_reasons"] == {"length": 40}
    assert summary["response_status_counts"] == {"200": 40} and summary["server_errors_5xx"] == 0
    assert summary["retries"] == {"clients_retried": 0, "retries_total": 0,
                                  "clients_by_attempts": {"1": 40}}
    assert summary["output_tokens"] == 40 * TOKENS
    assert 0 < summary["ttft_ms"]["p50"] <= summary["ttft_ms"]["p99"] <= summary["total_ms"]["max"]
    assert summary["healthy_after"] and summary["health"]["tries"] == 1
    assert server.max_in_flight == 40  # all at once: the pool holds a connection per client
    assert server.requests == 40 + 1  # + the health check's completion


def test_retries_recover_a_refused_client_and_are_counted(server: ChatServer, tmp_path: Path) -> None:
    server.refuse = [429, 429, 429]  # the first three answers: two clients refused once, or one twice
    code, summary = run_tool(server, tmp_path, "--clients", "5")
    assert code == 0 and summary["completed"] == 5
    assert summary["response_status_counts"] == {"200": 5, "429": 3}
    assert summary["final_status_counts"] == {"200": 5}
    assert summary["retries"]["retries_total"] == 3
    assert summary["server_errors_5xx"] == 0


def test_a_5xx_hidden_by_a_retry_still_counts(server: ChatServer, tmp_path: Path) -> None:
    server.refuse = [503]
    code, summary = run_tool(server, tmp_path, "--clients", "3")
    assert summary["completed"] == 3 and summary["server_errors_5xx"] == 1
    assert code == 1 and summary["failures"] == ["1 5xx responses > 0"]
    server.refuse = [503]
    code, summary = run_tool(server, tmp_path, "--clients", "3", "--max-5xx", "1")  # thresholds are flags
    assert code == 0 and summary["server_errors_5xx"] == 1 and summary["criteria"]["max_5xx"] == 1


def test_retries_run_out(server: ChatServer, tmp_path: Path) -> None:
    server.refuse = [429] * 6  # openai's default: 2 retries, so 3 answers per client
    code, summary = run_tool(server, tmp_path, "--clients", "2")
    assert code == 1 and summary["completed"] == 0 and summary["ttft_ms"] is None
    assert summary["outcomes"] == {"http_429": 2} and summary["final_status_counts"] == {"429": 2}
    assert summary["response_status_counts"] == {"429": 6} and summary["server_errors_5xx"] == 0
    assert summary["retries"] == {"clients_retried": 2, "retries_total": 4, "clients_by_attempts": {"3": 2}}
    assert summary["failures"] == ["completed 0.00% < 99.00%"]
    assert summary["error_samples"]["http_429"][0] == "Error code: 429 - refused 429 (Retry-After: 0.1)"


def test_an_error_body_that_is_not_openai_json_is_kept(server: ChatServer, tmp_path: Path) -> None:
    server.refuse, server.plain_text, server.retry_after = [503] * 3, True, None
    _, summary = run_tool(server, tmp_path, "--clients", "1")
    assert summary["error_samples"] == {"http_503": ["Error code: 503 - body: dropped 503"]}


def test_the_deadline_cancels_what_is_left(server: ChatServer, tmp_path: Path) -> None:
    server.hold_s = 5
    code, summary = run_tool(server, tmp_path, "--clients", "4", "--deadline-s", "1")
    assert code == 1
    assert summary["outcomes"] == {"deadline": 4} and summary["completed"] == 0
    assert 1 <= summary["duration_s"] < 3


def test_a_stream_error_is_not_completed(server: ChatServer, tmp_path: Path) -> None:
    server.break_after = 2
    _, summary = run_tool(server, tmp_path, "--clients", "2")
    assert summary["outcomes"] == {"stream_error": 2} and summary["final_status_counts"] == {"200": 2}


def test_unhealthy_afterwards_fails(server: ChatServer, tmp_path: Path) -> None:
    server.healthy = False
    code, summary = run_tool(server, tmp_path, "--clients", "2", "--health-timeout-s", "1")
    assert code == 1 and summary["completed"] == 2 and not summary["healthy_after"]
    assert summary["failures"] == ["server not healthy afterwards: RuntimeError: GET /health answered 503"]


@pytest.mark.parametrize("url", ["http://192.0.2.1:8000/v1", "http://example.com/v1", "ftp://127.0.0.1/v1"])
def test_non_loopback_targets_are_refused(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--base-url", url, "--model", "m", "--clients", "1"]) == 2
    assert "error:" in capsys.readouterr().err


def test_api_root_and_open_file_limit() -> None:
    assert api_root("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"
    assert api_root("http://127.0.0.1:8000/prefix/v1/") == "http://127.0.0.1:8000/prefix"
    soft, hard = raise_open_file_limit()
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or soft == hard
