"""Live progress while a step runs, the client's event-loop lag, and optional client metrics.

On a terminal, one line on stderr is rewritten in place; otherwise (CI logs) a full line
is printed every ``interval_s``. With ``--metrics-port`` the same counters are served
for Prometheus by prometheus-client on 127.0.0.1 (prefix ``loadtest_``; labels are the
step and the error kind only).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from typing import TextIO

import numpy as np

from loadtests.client import RequestResult

RATE_WINDOW_S = 5.0


class ClientMetrics:
    """prometheus-client metrics of the load generator, served on 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            start_http_server,
        )

        self.registry = CollectorRegistry()
        buckets = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
        self.requests = Counter("loadtest_requests", "Finished requests.", ["step", "outcome"],
                                registry=self.registry)
        self.in_flight = Gauge("loadtest_requests_in_flight", "Requests in flight.",
                               registry=self.registry)
        self.ttft = Histogram("loadtest_ttft_seconds", "Time to first token.", ["step"],
                              buckets=buckets, registry=self.registry)
        self.e2e = Histogram("loadtest_e2e_seconds", "End-to-end latency.", ["step"],
                             buckets=buckets, registry=self.registry)
        self.output_tokens = Counter("loadtest_output_tokens", "Output tokens received.",
                                     ["step"], registry=self.registry)
        self.server, self.thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def observe(self, result: RequestResult) -> None:
        """Record one finished request."""
        self.requests.labels(result.step, result.error_kind or "ok").inc()
        if result.ttft is not None:
            self.ttft.labels(result.step).observe(result.ttft)
        if result.ok and result.e2e is not None:
            self.e2e.labels(result.step).observe(result.e2e)
            self.output_tokens.labels(result.step).inc(result.output_tokens or 0)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()


class Progress:
    """Counts requests of the current step and renders a progress line."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool = True,
        interval_s: float | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s or (0.5 if self.tty else 10.0)
        self.metrics = metrics
        self.label = ""
        self.target = 0
        self.reset("", 0)

    def reset(self, label: str, target: int) -> None:
        """Start counting a new step of at most ``target`` requests."""
        self.label, self.target = label, target
        self.started = self.done = self.errors = self.in_flight = 0
        self.step_start = time.perf_counter()
        self.recent: deque[tuple[float, int]] = deque()
        self.lags: list[float] = []

    def request_started(self) -> None:
        """A request was sent."""
        self.started += 1
        self.in_flight += 1
        if self.metrics:
            self.metrics.in_flight.inc()

    def request_finished(self, result: RequestResult) -> None:
        """A request ended (in any way)."""
        self.in_flight -= 1
        self.done += 1
        if not result.ok:
            self.errors += 1
        tokens = (result.output_tokens or 0) if result.ok else 0
        self.recent.append((time.perf_counter(), tokens))
        if self.metrics:
            self.metrics.in_flight.dec()
            self.metrics.observe(result)

    def line(self) -> str:
        """The current progress line."""
        now = time.perf_counter()
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
            self.recent.popleft()
        window = min(RATE_WINDOW_S, max(now - self.step_start, 1e-3))
        rps = len(self.recent) / window
        tps = sum(tokens for _, tokens in self.recent) / window
        return (f"[{self.label}] {self.done}/{self.target} done, {self.in_flight} in flight, "
                f"{rps:.1f} req/s, {tps:.0f} tok/s, {self.errors} errors, "
                f"{now - self.step_start:.0f}s")

    def render(self, final: bool = False) -> None:
        """Write the line: in place on a terminal, as a new line otherwise."""
        if not self.enabled:
            return
        if self.tty:
            end = "\n" if final else ""
            self.stream.write("\r\033[K" + self.line() + end)
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    async def run(self) -> None:
        """Render every ``interval_s`` and sample event-loop lag until cancelled."""
        tick = 0.05
        last_render = time.perf_counter()
        while True:
            before = time.perf_counter()
            await asyncio.sleep(tick)
            self.lags.append(max(0.0, time.perf_counter() - before - tick))
            if time.perf_counter() - last_render >= self.interval_s:
                self.render()
                last_render = time.perf_counter()

    def loop_lag(self) -> dict[str, float] | None:
        """The step's event-loop lag (ms): how late the client's loop woke up."""
        if not self.lags:
            return None
        lags = np.asarray(self.lags) * 1000.0
        return {"p50": float(np.percentile(lags, 50)), "p99": float(np.percentile(lags, 99)),
                "max": float(lags.max())}
