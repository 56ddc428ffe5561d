"""Request-level metrics of our own (prefix ``serving_``), recorded at the event.

Every metric is declared once here as a ``MetricSpec`` (name, type, labels, buckets);
``docs/metrics.md`` documents each one and a test keeps the two in sync. The request
path calls ``RequestMetrics.start(route)`` once per request and the returned
``RequestRecord`` at each event (queue wait, tokens, disconnect, finish).

Metrics go through ``ray.serve.metrics`` by default, so inside a Serve replica they are
exported on Ray's metrics port with a ``ray_`` prefix, ``_total`` on counters and the
application/deployment/replica tags (``serving_requests`` -> ``ray_serving_requests_total``).
Outside a replica (or without a running Ray) recording is a harmless no-op. Tests pass a
``PrometheusClientBackend`` to read the values back under the same exported names.

Labels are bounded: model, route template, status class, outcome (and a few small sets
for operator counters). Never a raw path, request id, key or text: values outside
the known sets become ``other``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from serving.observability.backends import MetricsBackend, RayMetricsBackend
from serving.observability.labels import BoundedLabel, status_class

MetricKind = Literal["counter", "gauge", "histogram"]

# Ray prepends this to every application metric on export.
EXPORT_PREFIX = "ray_"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its declared name, type, labels and (histograms) bucket bounds."""

    name: str
    kind: MetricKind
    description: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def exported(self) -> str:
        """The name Prometheus sees on Ray's port (``ray_`` prefix, ``_total`` on counters)."""
        suffix = "_total" if self.kind == "counter" else ""
        return f"{EXPORT_PREFIX}{self.name}{suffix}"


# Latency buckets for LLM serving: milliseconds (cached prefixes, tiny models) up to
# minutes (long generations, deep queues). Seconds, as Prometheus recommends.
TTFT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ITL_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
E2E_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The TTFT SLO threshold (seconds) is one of the TTFT bucket bounds; the alert rules
# read the bucket with this ``le`` (deploy/prometheus/rules/serving-alerts.yaml).
TTFT_SLO_THRESHOLD_S = 2.5

REQUESTS = MetricSpec(
    "serving_requests",
    "counter",
    "Finished requests by route, HTTP status class and outcome.",
    ("model", "route", "status_class", "outcome"),
)
TIME_TO_FIRST_TOKEN = MetricSpec(
    "serving_time_to_first_token_seconds",
    "histogram",
    "Seconds from request arrival to the first output token (queueing and prefill included).",
    ("model", "route"),
    TTFT_BUCKETS_S,
)
INTER_TOKEN_LATENCY = MetricSpec(
    "serving_inter_token_latency_seconds",
    "histogram",
    "Seconds between output tokens after the first (per token, averaged within a chunk).",
    ("model", "route"),
    ITL_BUCKETS_S,
)
REQUEST_DURATION = MetricSpec(
    "serving_request_duration_seconds",
    "histogram",
    "End-to-end seconds from request arrival to its last byte, by status class.",
    ("model", "route", "status_class"),
    E2E_BUCKETS_S,
)
QUEUE_WAIT = MetricSpec(
    "serving_queue_wait_seconds",
    "histogram",
    "Seconds a request waited in the engine's queue before its first step.",
    ("model",),
    QUEUE_BUCKETS_S,
)
PROMPT_TOKENS = MetricSpec(
    "serving_prompt_tokens",
    "counter",
    "Prompt tokens of finished requests.",
    ("model", "route"),
)
COMPLETION_TOKENS = MetricSpec(
    "serving_completion_tokens",
    "counter",
    "Output tokens of finished requests (all choices).",
    ("model", "route"),
)
IN_FLIGHT = MetricSpec(
    "serving_requests_in_flight",
    "gauge",
    "Requests this replica is handling right now (arrived, not finished).",
    ("model", "route"),
)
CLIENT_DISCONNECTS = MetricSpec(
    "serving_client_disconnects",
    "counter",
    "Requests whose client went away before the response ended (the engine request was aborted).",
    ("model", "route"),
)
MODEL_INFO = MetricSpec(
    "serving_model_info",
    "gauge",
    "Always 1 per replica: which model version the replica serves.",
    ("model", "version"),
)
FEEDBACK = MetricSpec(
    "serving_feedback",
    "counter",
    "User feedback on responses by model version and rating.",
    ("model", "version", "rating"),
)
MODERATION_BLOCKS = MetricSpec(
    "serving_moderation_blocks",
    "counter",
    "Requests or responses blocked by moderation, by stage and category.",
    ("model", "stage", "category"),
)

METRICS: tuple[MetricSpec, ...] = (
    REQUESTS,
    TIME_TO_FIRST_TOKEN,
    INTER_TOKEN_LATENCY,
    REQUEST_DURATION,
    QUEUE_WAIT,
    PROMPT_TOKENS,
    COMPLETION_TOKENS,
    IN_FLIGHT,
    CLIENT_DISCONNECTS,
    MODEL_INFO,
    FEEDBACK,
    MODERATION_BLOCKS,
)

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
MODERATION_STAGES = frozenset({"input", "output"})
FEEDBACK_RATINGS = frozenset({"up", "down", "1", "2", "3", "4", "5"})


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
        self._model = BoundedLabel(max_values=16)
        self._version = BoundedLabel(max_values=16)
        self._category = BoundedLabel(max_values=32)
        self._stage = BoundedLabel(MODERATION_STAGES)
        self._rating = BoundedLabel(FEEDBACK_RATINGS)
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

    def feedback(self, model: str, version: str, rating: str | int) -> None:
        """Count one user feedback (``rating``: up/down or 1..5) on ``model`` ``version``."""
        self._instruments[FEEDBACK.name].record(
            1,
            {"model": self._model(model), "version": self._version(str(version)), "rating": self._rating(str(rating))},
        )

    def moderation_block(self, model: str, stage: str, category: str) -> None:
        """Count one moderation block at ``stage`` (input/output) for ``category``."""
        self._instruments[MODERATION_BLOCKS.name].record(
            1,
            {"model": self._model(model), "stage": self._stage(stage), "category": self._category(category)},
        )

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
