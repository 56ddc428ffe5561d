"""The one catalog of every metric the stack records (prefix ``serving_``).

Every metric is declared here once as a ``MetricSpec`` (name, type, description,
labels, buckets) and recorded through a ``MetricsBackend`` instrument
(``backend.instrument(spec).record(value, labels)``): the request metrics by
``serving.observability.metrics.RequestMetrics`` and the features' by
``GatewayMetrics``, ``ModerationMetrics``, ``FeedbackMetrics`` and
``EmbeddingsMetrics``. ``CATALOG`` holds them all; ``docs/metrics.md`` documents
each one under its exported name and a test keeps the two in sync.

Names, labels and bucket bounds are what dashboards, alert rules and operators query:
change one only together with ``deploy/`` and the docs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

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


# ---------------------------------------------------------------------------------------
# Request metrics (RequestMetrics / RequestRecord)
# ---------------------------------------------------------------------------------------

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

REQUEST_METRICS: tuple[MetricSpec, ...] = (
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
)

# ---------------------------------------------------------------------------------------
# Gateway (serving.gateway.metrics.GatewayMetrics)
# ---------------------------------------------------------------------------------------

GATEWAY_LIMITER_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)

GATEWAY_DECISIONS = MetricSpec(
    "serving_gateway_decisions",
    "counter",
    "Gateway policy decisions by policy, decision and reason.",
    ("model", "policy", "decision", "reason", "tier"),
)
# The same metric with the short key id as a label too: what GatewayMetrics declares
# when ``gateway.metrics.label_key_id`` is on. Off (the default), the series carry no
# ``key_id`` label at all, as before. Not a metric of its own (not in CATALOG).
GATEWAY_DECISIONS_BY_KEY_ID = replace(GATEWAY_DECISIONS, labels=(*GATEWAY_DECISIONS.labels, "key_id"))
GATEWAY_IN_FLIGHT = MetricSpec(
    "serving_gateway_in_flight_requests",
    "gauge",
    "Requests inside this replica right now.",
    ("model",),
)
GATEWAY_LIMITER_CHECK = MetricSpec(
    "serving_gateway_limiter_check_seconds",
    "histogram",
    "Time of one shared-limiter check-and-reserve call.",
    ("model", "store"),
    GATEWAY_LIMITER_BUCKETS_S,
)
GATEWAY_LIMITER_UNAVAILABLE = MetricSpec(
    "serving_gateway_limiter_unavailable",
    "counter",
    "Limiter store calls that failed or timed out, by store, operation "
    "(acquire, release) and the consequence (failed_closed, failed_open, lease_expires).",
    ("model", "store", "operation", "action"),
)

GATEWAY_METRICS: tuple[MetricSpec, ...] = (
    GATEWAY_DECISIONS,
    GATEWAY_IN_FLIGHT,
    GATEWAY_LIMITER_CHECK,
    GATEWAY_LIMITER_UNAVAILABLE,
)

# ---------------------------------------------------------------------------------------
# Moderation (serving.moderation.metrics.ModerationMetrics)
# ---------------------------------------------------------------------------------------

MODERATION_CHECKS = MetricSpec(
    "serving_moderation_checks",
    "counter",
    "Moderation verdicts by stage and outcome (passed, flagged, blocked).",
    ("model", "stage", "outcome"),
)
MODERATION_BLOCKS = MetricSpec(
    "serving_moderation_blocks",
    "counter",
    "Inputs refused and streams cut by the moderation policy, by category.",
    ("model", "stage", "category"),
)
MODERATION_FLAGS = MetricSpec(
    "serving_moderation_flags",
    "counter",
    "Detections reported without blocking, by category.",
    ("model", "stage", "category"),
)
MODERATION_CLASSIFIER_ERRORS = MetricSpec(
    "serving_moderation_classifier_errors",
    "counter",
    "Classifier calls that failed or timed out (the rules still applied).",
    ("model",),
)

MODERATION_METRICS: tuple[MetricSpec, ...] = (
    MODERATION_CHECKS,
    MODERATION_BLOCKS,
    MODERATION_FLAGS,
    MODERATION_CLASSIFIER_ERRORS,
)

# ---------------------------------------------------------------------------------------
# Feedback (serving.feedback.metrics.FeedbackMetrics)
# ---------------------------------------------------------------------------------------

FEEDBACK_SUBMISSIONS = MetricSpec(
    "serving_feedback_submissions",
    "counter",
    "Feedback stored, by model, model version, thumbs and score.",
    ("model", "model_version", "thumbs", "score"),
)
FEEDBACK_REJECTED = MetricSpec(
    "serving_feedback_rejected",
    "counter",
    "Feedback refused, by reason (not_found, duplicate).",
    ("reason",),
)
FEEDBACK_RESPONSES_RECORDED = MetricSpec(
    "serving_feedback_responses_recorded",
    "counter",
    "Response metadata records queued for the feedback store, by outcome (queued, dropped).",
    ("model", "outcome"),
)

FEEDBACK_METRICS: tuple[MetricSpec, ...] = (
    FEEDBACK_SUBMISSIONS,
    FEEDBACK_REJECTED,
    FEEDBACK_RESPONSES_RECORDED,
)

# ---------------------------------------------------------------------------------------
# Embeddings (serving.embeddings.metrics.EmbeddingsMetrics)
# ---------------------------------------------------------------------------------------

EMBEDDINGS_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
EMBEDDINGS_FORWARD_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

EMBEDDINGS_BATCH_SIZE = MetricSpec(
    "serving_embeddings_batch_size",
    "histogram",
    "Requests served by one batched forward pass.",
    ("model",),
    EMBEDDINGS_BATCH_BUCKETS,
)
EMBEDDINGS_BATCH_TEXTS = MetricSpec(
    "serving_embeddings_batch_texts",
    "histogram",
    "Texts embedded by one batched forward pass.",
    ("model",),
    EMBEDDINGS_BATCH_BUCKETS,
)
EMBEDDINGS_FORWARD_SECONDS = MetricSpec(
    "serving_embeddings_forward_seconds",
    "histogram",
    "Time of one batched forward pass (tokenize + model + pooling).",
    ("model",),
    EMBEDDINGS_FORWARD_BUCKETS_S,
)
EMBEDDINGS_TOKENS = MetricSpec(
    "serving_embeddings_tokens",
    "counter",
    "Tokens embedded.",
    ("model",),
)

EMBEDDINGS_METRICS: tuple[MetricSpec, ...] = (
    EMBEDDINGS_BATCH_SIZE,
    EMBEDDINGS_BATCH_TEXTS,
    EMBEDDINGS_FORWARD_SECONDS,
    EMBEDDINGS_TOKENS,
)

# ---------------------------------------------------------------------------------------

# Every metric of the stack, each once.
CATALOG: tuple[MetricSpec, ...] = (
    *REQUEST_METRICS,
    *GATEWAY_METRICS,
    *MODERATION_METRICS,
    *FEEDBACK_METRICS,
    *EMBEDDINGS_METRICS,
)

# Declared label-set variants of a catalog metric (same name, kind, description and
# buckets; extra labels), used instead of it when an option asks for those labels.
VARIANTS: tuple[MetricSpec, ...] = (GATEWAY_DECISIONS_BY_KEY_ID,)
