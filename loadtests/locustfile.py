"""Locust users that chat with an OpenAI-compatible endpoint and measure TTFT on streams.

For teams that already run Locust. Each user sends streamed chat requests from one of
the packaged workloads (multi-turn users keep their history and think between turns)
and reports, besides Locust's own ``POST`` entry (time to response headers), three
custom entries per request:

- ``SSE TTFT``: time to the first generated text;
- ``SSE E2E``: time to the end of the stream;
- ``SSE TPOT``: (E2E - TTFT) / (output tokens - 1), output tokens from ``usage``.

Run (headless, bounded)::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 8 -r 2 -t 60s --csv results/locust

Environment: LOADTEST_WORKLOAD (default short_chat), LOADTEST_MODEL (default: the
first of GET /v1/models), LOADTEST_MAX_TOKENS, LOADTEST_API_PREFIX (default /v1),
LOADTEST_API_KEY_ENV (name of the variable holding a key). Hosts other than loopback
are refused unless LOADTEST_ALLOW_REMOTE=1.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from locust import HttpUser, events, task
from locust.exception import StopUser

if __package__ in (None, ""):  # Locust loads this file by path: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.safety import check_target  # noqa: E402
from loadtests.sse import DONE, SSEParser  # noqa: E402
from loadtests.workloads import Session, load_workload  # noqa: E402

WORKLOAD = load_workload(os.environ.get("LOADTEST_WORKLOAD", "short_chat"))
PREFIX = os.environ.get("LOADTEST_API_PREFIX", "/v1").rstrip("/")


@events.test_start.add_listener
def _refuse_remote_hosts(environment, **_: object) -> None:
    """Stop before any request when the host is not loopback and not explicitly allowed."""
    allow = os.environ.get("LOADTEST_ALLOW_REMOTE") == "1"
    try:
        check_target(environment.host or "http://127.0.0.1:8000", allow_remote=allow)
    except ValueError as exc:
        environment.process_exit_code = 2
        print(f"error: {exc} (Locust: set LOADTEST_ALLOW_REMOTE=1)")
        if environment.runner is not None:
            environment.runner.quit()
        raise


class ChatUser(HttpUser):
    """A chat user: streamed requests, history kept for multi-turn workloads."""

    host = "http://127.0.0.1:8000"

    def on_start(self) -> None:
        allow = os.environ.get("LOADTEST_ALLOW_REMOTE") == "1"
        try:
            check_target(self.host, allow_remote=allow)
        except ValueError as exc:
            raise StopUser() from exc
        self.rng = random.Random()
        key_env = os.environ.get("LOADTEST_API_KEY_ENV")
        if key_env and os.environ.get(key_env):
            self.client.headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        self.model = os.environ.get("LOADTEST_MODEL") or self._first_model()
        max_tokens = os.environ.get("LOADTEST_MAX_TOKENS")
        self.max_tokens = int(max_tokens) if max_tokens else None
        self.session: Session | None = None
        self.reply: str | None = None

    def _first_model(self) -> str:
        response = self.client.get(f"{PREFIX}/models", name=f"{PREFIX}/models")
        return response.json()["data"][0]["id"]

    def wait_time(self) -> float:
        """Think time between turns of a conversation; none between conversations."""
        if self.session is not None and self.session.has_more:
            return self.session.think_time(self.rng)
        return 0.0

    @task
    def chat(self) -> None:
        """Send the next turn (a new session when the last one is over) and measure it."""
        if self.session is None or not self.session.has_more:
            self.session = WORKLOAD.new_session(self.rng, max_tokens=self.max_tokens)
            self.reply = None
        spec = self.session.next_request(self.reply)
        if spec is None:
            self.session = None
            return
        body = spec.body(self.model, stream=True, temperature=0.0, extra={})
        path = f"{PREFIX}/chat/completions" if spec.endpoint == "chat" else f"{PREFIX}/completions"
        start = time.perf_counter()
        measured = _Measured()
        with self.client.post(path, json=body, stream=True, name=path,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                self.session = None
                return
            try:
                measured.read(response.iter_content(chunk_size=None))
            except (ValueError, OSError) as exc:
                response.failure(f"{type(exc).__name__}: {exc}")
                self.session = None
                return
            if measured.error:
                response.failure(measured.error)
                self.session = None
                return
            response.success()
        self.reply = measured.text
        self._report(start, measured)

    def _report(self, start: float, m: "_Measured") -> None:
        fire = self.environment.events.request.fire
        if m.first is None:
            return
        ttft = m.first - start
        e2e = m.end - start
        fire(request_type="SSE", name="TTFT", response_time=ttft * 1000,
             response_length=m.tokens, exception=None, context={})
        fire(request_type="SSE", name="E2E", response_time=e2e * 1000,
             response_length=m.tokens, exception=None, context={})
        if m.tokens > 1:
            fire(request_type="SSE", name="TPOT", response_time=(e2e - ttft) / (m.tokens - 1)
                 * 1000, response_length=m.tokens, exception=None, context={})


class _Measured:
    """Timestamps of one SSE stream read with ``requests``."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.end = 0.0
        self.tokens = 0
        self.chunks = 0
        self.text = ""
        self.error: str | None = None

    def read(self, pieces) -> None:
        parser = SSEParser()
        parts: list[str] = []
        usage_tokens = None
        for piece in pieces:
            now = time.perf_counter()
            for event in parser.feed(piece):
                usage_tokens = self._event(event.data, now, parts, usage_tokens)
        for event in parser.close():
            usage_tokens = self._event(event.data, time.perf_counter(), parts, usage_tokens)
        self.end = time.perf_counter()
        self.tokens = usage_tokens if usage_tokens is not None else self.chunks
        self.text = "".join(parts)

    def _event(self, data: str, now: float, parts: list[str], usage: int | None) -> int | None:
        data = data.strip()
        if not data or data == DONE:
            return usage
        payload = json.loads(data)
        if payload.get("error"):
            self.error = str(payload["error"])[:200]
            return usage
        if (payload.get("usage") or {}).get("completion_tokens") is not None:
            usage = int(payload["usage"]["completion_tokens"])
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content") or choice.get("text") or ""
            if text:
                if self.first is None:
                    self.first = now
                self.chunks += 1
                parts.append(text)
        return usage
