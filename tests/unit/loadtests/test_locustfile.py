"""The Locust file: a short headless run reports TTFT/E2E/TPOT; remote hosts are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import loadtests

LOCUSTFILE = Path(loadtests.__file__).parent / "locustfile.py"


def locust(host: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host, "--headless",
           "-u", "2", "-r", "2", "-t", "2s", "--only-summary", *extra]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_headless_run_reports_ttft_from_the_stream(server, tmp_path) -> None:
    host = server.url.removesuffix("/v1")
    done = locust(host, tmp_path, "--json-file", str(tmp_path / "stats"))
    assert done.returncode == 0, done.stderr[-2000:]
    entries = json.loads((tmp_path / "stats.json").read_text())
    stats = {(e["method"], e["name"]): e for e in entries}
    ttft, e2e = stats[("SSE", "TTFT")], stats[("SSE", "E2E")]
    post = stats[("POST", "/v1/chat/completions")]
    assert ttft["num_requests"] > 0 and ttft["num_failures"] == 0
    assert ttft["num_requests"] == post["num_requests"] == e2e["num_requests"]
    # the fixture's default script: first text after 20 ms, then 7 more tokens 5 ms apart
    assert 20 <= ttft["min_response_time"]
    assert ttft["total_response_time"] / ttft["num_requests"] < 300
    assert 55 <= e2e["min_response_time"]
    assert e2e["total_response_time"] / e2e["num_requests"] < 400
    assert stats[("SSE", "TPOT")]["num_requests"] > 0
    assert len(server.server.log) >= post["num_requests"]


def test_remote_host_is_refused_before_any_request(tmp_path) -> None:
    done = locust("http://10.9.9.9:8000", tmp_path)
    assert done.returncode == 2
    assert "refusing to send load" in done.stdout + done.stderr
