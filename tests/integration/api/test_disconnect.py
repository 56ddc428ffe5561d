"""A client that disconnects mid-stream aborts the engine request."""

from __future__ import annotations

import json
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Stack

RUNNING = "ray_vllm_num_requests_running"


def gauge_total(metrics_url: str, name: str) -> float | None:
    text = httpx.get(metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sum(s.value for s in family.samples if s.name == name)
    return None


def request_log_lines(stack: Stack, request_id: str) -> list[dict]:
    """The structured request log lines (JSON) of ``request_id`` in Ray's log dir."""
    lines = []
    for path in stack.log_dir.rglob("*"):
        if not path.is_file() or path.suffix not in (".err", ".out", ".log"):
            continue
        for line in path.read_text(errors="replace").splitlines():
            start = line.find("{")
            if start < 0 or request_id not in line:
                continue
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if record.get("event") == "request" and record.get("request_id") == request_id:
                lines.append(record)
    return lines


def test_disconnect_mid_stream_aborts_engine_request(stack: Stack) -> None:
    body = {
        "model": stack.model,
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 450,
        "temperature": 1.0,
        "stream": True,
    }
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body, headers={"x-request-id": "disconnect-me"}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            got = [next(lines) for _ in range(6)]  # a few events, then hang up
            assert any(line.startswith("data: ") for line in got)
    # The engine stops the request: its running gauge returns to 0 ...
    deadline = time.monotonic() + 60
    running = None
    while time.monotonic() < deadline:
        running = gauge_total(stack.metrics_url, RUNNING)
        if running == 0:
            break
        time.sleep(1)
    assert running == 0, f"{RUNNING} stayed at {running}"
    # ... and the request log shows an abort long before max_tokens were generated.
    deadline = time.monotonic() + 30
    logged: list[dict] = []
    while time.monotonic() < deadline and not logged:
        logged = request_log_lines(stack, "disconnect-me")
        time.sleep(0.5)
    assert logged, "no request log line for the disconnected request"
    assert logged[-1]["outcome"] == "aborted" and logged[-1]["status_code"] == 499
    assert logged[-1]["completion_tokens"] < 450
