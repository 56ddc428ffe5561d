"""Live progress lines and the optional Prometheus client metrics."""

from __future__ import annotations

import io
import socket
import urllib.request

from loadtests.client import RequestResult
from loadtests.progress import ClientMetrics, Progress
from loadtests.runner import run_scenario


def finished(ok: bool = True, tokens: int = 5) -> RequestResult:
    r = RequestResult("c=1", 0, 0, 0.0, end=0.2, status=200 if ok else 503,
                      first_token=0.1, output_tokens=tokens)
    r.error_kind = None if ok else "http_503"
    return r


def test_progress_line_counts_requests_and_errors() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    progress.reset("c=4", 10)
    for _ in range(3):
        progress.request_started()
    progress.request_finished(finished())
    progress.request_finished(finished(ok=False))
    progress.render()
    line = stream.getvalue()
    assert line.startswith("[c=4] 2/10 done, 1 in flight,") and "1 errors" in line
    assert line.endswith("\n")  # not a terminal: whole lines, no carriage return
    assert "\r" not in line


async def test_progress_prints_during_a_step(make_scenario) -> None:
    stream = io.StringIO()
    progress = Progress(stream, interval_s=0.05)
    scenario = make_scenario(["#script ttft_ms=40 tokens=2"], load={"max_requests": 6})
    await run_scenario(scenario, progress=progress)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3  # periodic lines plus the final one
    assert lines[-1].startswith("[c=1] 6/6 done, 0 in flight")
    assert progress.loop_lag() is not None


def test_client_metrics_are_served_on_loopback() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = ClientMetrics(port)
    try:
        progress = Progress(io.StringIO(), metrics=metrics)
        progress.request_started()
        progress.request_finished(finished(tokens=7))
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    assert 'loadtest_requests_total{outcome="ok",step="c=1"} 1.0' in body
    assert 'loadtest_output_tokens_total{step="c=1"} 7.0' in body
    assert "loadtest_ttft_seconds_bucket" in body and "loadtest_requests_in_flight 0.0" in body
