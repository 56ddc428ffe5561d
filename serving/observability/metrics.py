"""Request-level metrics of our own (prefix ``serving_``), recorded at the event.

Every metric is declared once as a ``MetricSpec`` in ``serving.observability.catalog``
(re-exported here: ``METRICS`` are the request ones); ``docs/metrics.md`` documents
each one and a test keeps the two in sync. The request path calls
``RequestMetrics.start(route)`` once per request and the returned ``RequestRecord``
at each event (queue wait, tokens, disconnect, finish).

Metrics go through ``ray.serve.metrics`` by default, so inside a Serve replica they are
exported on Ray's metrics port with a ``ray_`` prefix, ``_total`` on counters and the
application/deployment/replica tags (``serving_requests`` -> ``ray_serving_requests_total``).
Outside a replica (or without a running Ray) recording is a harmless no-op. Tests pass a
``PrometheusClientBackend`` to read the values back under the same exported names.

Labels are bounded: model, route template, status class, outcome, version. Never a raw
path, request id, key or text: values outside the known sets become ``other``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from serving.observability.backends import MetricsBackend, RayMetricsBackend
from serving.observability.catalog import (  # noqa: F401  (re-exported: imported from here elsewhere)
    CLIENT_DISCONNECTS,
    COMPLETION_TOKENS,
    E2E_BUCKETS_S,
    EXPORT_PREFIX,
    IN_FLIGHT,
    INTER_TOKEN_LATENCY,
    ITL_BUCKETS_S,
    MODEL_INFO,
    PROMPT_TOKENS,
    QUEUE_BUCKETS_S,
    QUEUE_WAIT,
    REQUEST_DURATION,
    REQUEST_METRICS,
    REQUESTS,
    TIME_TO_FIRST_TOKEN,
    TTFT_BUCKETS_S,
    TTFT_SLO_THRESHOLD_S,
    MetricKind,
    MetricSpec,
)
from serving.observability.labels import BoundedLabel, status_class

# The request metrics this module records (the whole stack's: catalog.CATALOG).
METRICS: tuple[MetricSpec, ...] = REQUEST_METRICS

# The bounded label values (anything else is recorded as "other").
OUTCOMES = frozenset(
    {
        "ok",
        "client_error",
        "rate_limited",
        "overloaded",
        "content_filter",
        "server_error",
        "timeout",
        "aborted",  # the client went away before the response ended
        "engine_aborted",  # the engine ended the generation itself (a 500)
    }
)


@dataclass
class RequestRecord:
    """The metrics of one request, from arrival to its last byte."""

    owner: "RequestMetrics"
    route: str
    start: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None
    _disconnected: bool = field(default=False, repr=False)
    _finished: bool = field(default=False, repr=False)

    def queue_wait(self, seconds: float) -> None:
        """Time the request waited before the engine started it."""
        if seconds >= 0:
            self.owner._observe(QUEUE_WAIT, seconds, {})

    def tokens(self, count: int) -> None:
        """``count`` output tokens arrived now (first call marks time to first token)."""
        if count <= 0:
            return
        now = time.monotonic()
        labels = {"route": self.route}
        if self.first_token_at is None:
            self.first_token_at = now
            self.owner._observe(TIME_TO_FIRST_TOKEN, now - self.start, labels)
        elif self.last_token_at is not None:
            self.owner._observe(INTER_TOKEN_LATENCY, (now - self.last_token_at) / count, labels)
        self.last_token_at = now

    def disconnected(self) -> None:
        """The client went away before the response ended (the engine request was aborted)."""
        if not self._disconnected:
            self._disconnected = True
            self.owner._inc(CLIENT_DISCONNECTS, 1, {"route": self.route})

    def finish(
        self, *, status_code: int, outcome: str, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """The request ended with this HTTP status and outcome (ok, client_error, ...)."""
        if self._finished:
            return
        self._finished = True
        owner = self.owner
        klass = status_class(status_code)
        route = {"route": self.route}
        owner._inc(REQUESTS, 1, {**route, "status_class": klass, "outcome": owner._outcome(outcome)})
        owner._observe(REQUEST_DURATION, time.monotonic() - self.start, {**route, "status_class": klass})
        owner._inc(PROMPT_TOKENS, prompt_tokens, route)
        owner._inc(COMPLETION_TOKENS, completion_tokens, route)
        owner._left(self.route)


class RequestMetrics:
    """All request metrics of one model deployment replica."""

    def __init__(
        self,
        model_id: str,
        *,
        version: str = "unknown",
        backend: MetricsBackend | None = None,
    ) -> None:
        self.model_id = model_id
        self.backend = backend if backend is not None else RayMetricsBackend()
        self._instruments = {spec.name: self.backend.instrument(spec) for spec in METRICS}
        self._route = BoundedLabel(max_values=32)
        self._outcome = BoundedLabel(OUTCOMES)
        self._version = BoundedLabel(max_values=16)
        self._in_flight: dict[str, int] = {}
        self.set_model_info(version)

    def start(self, route: str) -> RequestRecord:
        """A request to ``route`` (a route template) arrived."""
        record = RequestRecord(owner=self, route=self._route(route))
        self._in_flight[record.route] = self._in_flight.get(record.route, 0) + 1
        self._set(IN_FLIGHT, self._in_flight[record.route], {"route": record.route})
        return record

    def set_model_info(self, version: str) -> None:
        """Publish ``serving_model_info{model, version} = 1`` for this replica."""
        self._set(MODEL_INFO, 1, {"version": self._version(str(version))})

    # The record's helpers: every request metric carries this replica's model label.
    def _inc(self, spec: MetricSpec, value: float, labels: dict[str, str]) -> None:
        if value > 0:
            self._instruments[spec.name].record(value, {"model": self.model_id, **labels})

    def _observe(self, spec: MetricSpec, value: float, labels: dict[str, str]) -> None:
        self._instruments[spec.name].record(max(value, 0.0), {"model": self.model_id, **labels})

    def _set(self, spec: MetricSpec, value: float, labels: dict[str, str]) -> None:
        self._instruments[spec.name].record(value, {"model": self.model_id, **labels})

    def _left(self, route: str) -> None:
        self._in_flight[route] = max(self._in_flight.get(route, 0) - 1, 0)
        self._set(IN_FLIGHT, self._in_flight[route], {"route": route})
