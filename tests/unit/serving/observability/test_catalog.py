"""The metrics catalog: every metric declared once, and each feature records under its exported names."""

from __future__ import annotations

import pytest

from serving.embeddings.metrics import EmbeddingsMetrics
from serving.feedback.metrics import FeedbackMetrics
from serving.gateway.metrics import ALLOWED, DENIED, FAILED_CLOSED, GatewayMetrics
from serving.moderation.metrics import INPUT, OUTPUT, ModerationMetrics
from serving.observability import catalog
from serving.observability.backends import PrometheusClientBackend, RayMetricsBackend
from serving.observability.catalog import CATALOG, VARIANTS, MetricSpec
from serving.observability.metrics import METRICS


def _families(backend: PrometheusClientBackend) -> set[str]:
    """The sample names of the exposition (``name{...}`` and bare ``name`` lines)."""
    names = set()
    for line in backend.exposition().splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def _exported_samples(specs: tuple[MetricSpec, ...]) -> set[str]:
    return {spec.exported + ("_count" if spec.kind == "histogram" else "") for spec in specs}


def test_every_metric_is_declared_once() -> None:
    names = [spec.name for spec in CATALOG]
    assert len(names) == len(set(names))
    assert all(spec.name.startswith("serving_") and spec.exported.startswith("ray_serving_") for spec in CATALOG)
    declared = {name: value for name, value in vars(catalog).items() if isinstance(value, MetricSpec)}
    assert {spec.name for spec in declared.values()} == set(names)  # no spec outside CATALOG but variants
    assert set(METRICS) <= set(CATALOG)


def test_variants_only_add_labels_to_a_catalog_metric() -> None:
    by_name = {spec.name: spec for spec in CATALOG}
    for variant in VARIANTS:
        base = by_name[variant.name]
        assert (variant.kind, variant.description, variant.buckets) == (base.kind, base.description, base.buckets)
        assert variant.labels[: len(base.labels)] == base.labels and len(variant.labels) > len(base.labels)


def test_histograms_have_sorted_buckets() -> None:
    for spec in CATALOG:
        assert bool(spec.buckets) == (spec.kind == "histogram"), spec.name
        assert list(spec.buckets) == sorted(set(spec.buckets)), spec.name


def test_gateway_metrics_export_under_the_catalog_names(backend, scrape) -> None:
    metrics = GatewayMetrics("m", backend=backend)
    metrics.decision("rate_limit", ALLOWED, tier="gold", key_id="k1")
    metrics.decision("rate_limit", DENIED, "rpm")
    metrics.in_flight(3)
    metrics.limiter_check(0.002, "memory")
    metrics.limiter_unavailable("redis", "acquire", FAILED_CLOSED)
    assert _exported_samples(catalog.GATEWAY_METRICS) <= _families(backend)
    decisions = scrape.samples("ray_serving_gateway_decisions_total")
    assert {k: v for k, v in decisions.items() if ("decision", "denied") in k} == {
        frozenset({("model", "m"), ("policy", "rate_limit"), ("decision", "denied"), ("reason", "rpm"), ("tier", "")}): 1
    }
    assert all("key_id" not in dict(k) for k in decisions)  # off: no key_id label at all
    assert scrape.value("ray_serving_gateway_in_flight_requests", model="m") == 3
    assert scrape.value("ray_serving_gateway_limiter_check_seconds_count", model="m", store="memory") == 1
    assert scrape.value("ray_serving_gateway_limiter_unavailable_total", store="redis", action=FAILED_CLOSED) == 1
    assert metrics.count("rate_limit") == 2 and metrics.unavailable[("redis", "acquire", FAILED_CLOSED)] == 1


def test_gateway_key_id_label_when_asked(backend, scrape) -> None:
    metrics = GatewayMetrics("m", label_key_id=True, backend=backend)
    metrics.decision("auth", ALLOWED, key_id="k1")
    metrics.decision("auth", DENIED, "missing")
    keys = {dict(k)["key_id"] for k in scrape.samples("ray_serving_gateway_decisions_total")}
    assert keys == {"k1", ""}


def test_moderation_metrics_export_under_the_catalog_names(backend, scrape) -> None:
    metrics = ModerationMetrics("m", backend=backend)
    metrics.verdict(INPUT, blocked=("violence",), flagged=("pii/email",))
    metrics.verdict(OUTPUT, blocked=(), flagged=())
    metrics.classifier_error()
    assert _exported_samples(catalog.MODERATION_METRICS) <= _families(backend)
    assert scrape.value("ray_serving_moderation_checks_total", stage=INPUT, outcome="blocked") == 1
    assert scrape.value("ray_serving_moderation_checks_total", stage=OUTPUT, outcome="passed") == 1
    assert scrape.value("ray_serving_moderation_blocks_total", model="m", stage=INPUT, category="violence") == 1
    assert scrape.value("ray_serving_moderation_flags_total", category="pii/email") == 1
    assert scrape.value("ray_serving_moderation_classifier_errors_total", model="m") == 1
    assert metrics.count("block", INPUT) == 1 and metrics.count("classifier_error") == 1


def test_feedback_metrics_export_under_the_catalog_names(backend, scrape) -> None:
    metrics = FeedbackMetrics(backend=backend)
    metrics.submitted("m", "v2", "up", None)
    metrics.submitted("m", "v2", None, 4)
    metrics.rejected("duplicate")
    metrics.response("m", queued=False)
    assert _exported_samples(catalog.FEEDBACK_METRICS) <= _families(backend)
    assert scrape.value("ray_serving_feedback_submissions_total", model_version="v2", thumbs="up", score="none") == 1
    assert scrape.value("ray_serving_feedback_submissions_total", thumbs="none", score="4") == 1
    assert scrape.value("ray_serving_feedback_rejected_total", reason="duplicate") == 1
    assert scrape.value("ray_serving_feedback_responses_recorded_total", model="m", outcome="dropped") == 1
    assert metrics.tally[("response", "dropped")] == 1


def test_embeddings_metrics_export_under_the_catalog_names(backend, scrape) -> None:
    metrics = EmbeddingsMetrics("e", backend=backend)
    metrics.batch(requests=3, texts=5, tokens=40, seconds=0.02)
    assert _exported_samples(catalog.EMBEDDINGS_METRICS) <= _families(backend)
    assert scrape.value("ray_serving_embeddings_batch_size_sum", model="e") == 3
    assert scrape.value("ray_serving_embeddings_batch_size_bucket", model="e", le="4.0") == 1
    assert scrape.value("ray_serving_embeddings_batch_texts_sum", model="e") == 5
    assert scrape.value("ray_serving_embeddings_forward_seconds_count", model="e") == 1
    assert scrape.value("ray_serving_embeddings_tokens_total", model="e") == 40
    assert metrics.tally["requests"] == 3 and metrics.max_batch_size == 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: GatewayMetrics("m"),
        lambda: GatewayMetrics("m", label_key_id=True),
        lambda: ModerationMetrics("m"),
        FeedbackMetrics,
        lambda: EmbeddingsMetrics("m"),
    ],
)
def test_without_ray_the_default_backend_records_nowhere_and_never_fails(make) -> None:
    import ray

    assert not ray.is_initialized()
    metrics = make()
    assert isinstance(metrics.backend, RayMetricsBackend)
    if isinstance(metrics, GatewayMetrics):
        metrics.decision("auth", ALLOWED, key_id="k")
        metrics.in_flight(1)
        metrics.limiter_check(0.001, "memory")
        metrics.limiter_unavailable("memory", "release", "lease_expires")
    elif isinstance(metrics, ModerationMetrics):
        metrics.verdict(INPUT, blocked=("x",), flagged=("y",))
        metrics.classifier_error()
    elif isinstance(metrics, FeedbackMetrics):
        metrics.submitted("m", "1", "up", 5)
        metrics.rejected("not_found")
        metrics.response("m", queued=True)
    else:
        metrics.batch(requests=1, texts=1, tokens=3, seconds=0.01)
    assert not ray.is_initialized()
    assert metrics.backend.refresher._thread is None
