"""RequestMetrics / RequestRecord: what the request path's calls record, under exported names."""

from __future__ import annotations

import time

import pytest

from serving.observability.backends import PrometheusClientBackend, RayMetricsBackend
from serving.observability.metrics import (
    METRICS,
    OUTCOMES,
    TIME_TO_FIRST_TOKEN,
    TTFT_SLO_THRESHOLD_S,
    RequestMetrics,
)

CHAT = "/v1/chat/completions"


def test_a_successful_streamed_request_records_every_request_metric(metrics, scrape) -> None:
    record = metrics.start(CHAT)
    assert scrape.value("ray_serving_requests_in_flight", route=CHAT) == 1
    record.queue_wait(0.02)
    time.sleep(0.01)
    record.tokens(1)
    time.sleep(0.01)
    record.tokens(4)
    record.finish(status_code=200, outcome="ok", prompt_tokens=12, completion_tokens=5)

    ok = dict(model="tiny", route=CHAT, status_class="2xx", outcome="ok")
    assert scrape.value("ray_serving_requests_total", **ok) == 1
    assert scrape.value("ray_serving_prompt_tokens_total", model="tiny", route=CHAT) == 12
    assert scrape.value("ray_serving_completion_tokens_total", model="tiny", route=CHAT) == 5
    assert scrape.value("ray_serving_requests_in_flight", route=CHAT) == 0
    assert scrape.value("ray_serving_queue_wait_seconds_count", model="tiny") == 1
    assert scrape.value("ray_serving_queue_wait_seconds_sum", model="tiny") == pytest.approx(0.02)
    ttft = scrape.value("ray_serving_time_to_first_token_seconds_sum", route=CHAT)
    assert 0.01 <= ttft < 1
    assert record.first_token_at is not None and record.first_token_at - record.start == pytest.approx(ttft)
    # One inter-token observation for the second chunk: its gap divided by its 4 tokens.
    assert scrape.value("ray_serving_inter_token_latency_seconds_count", route=CHAT) == 1
    assert 0.0025 <= scrape.value("ray_serving_inter_token_latency_seconds_sum", route=CHAT) < 0.25
    assert scrape.value("ray_serving_request_duration_seconds_count", route=CHAT, status_class="2xx") == 1
    assert scrape.value("ray_serving_client_disconnects_total", route=CHAT) == 0


def test_an_error_before_any_token_counts_the_request_but_no_latency_of_tokens(metrics, scrape) -> None:
    metrics.start("/v1/completions").finish(
        status_code=400, outcome="client_error", prompt_tokens=0, completion_tokens=0
    )
    assert scrape.value("ray_serving_requests_total", status_class="4xx", outcome="client_error") == 1
    assert scrape.samples("ray_serving_time_to_first_token_seconds_count") == {}
    assert scrape.samples("ray_serving_prompt_tokens_total") == {}  # zero tokens add nothing


def test_a_disconnect_counts_once_and_finishing_twice_counts_once(metrics, scrape) -> None:
    record = metrics.start(CHAT)
    record.tokens(2)
    record.disconnected()
    record.disconnected()
    record.finish(status_code=499, outcome="aborted", prompt_tokens=3, completion_tokens=2)
    record.finish(status_code=499, outcome="aborted", prompt_tokens=3, completion_tokens=2)
    assert scrape.value("ray_serving_client_disconnects_total", route=CHAT) == 1
    assert scrape.value("ray_serving_requests_total", status_class="4xx", outcome="aborted") == 1
    assert scrape.value("ray_serving_requests_in_flight", route=CHAT) == 0


def test_in_flight_counts_concurrent_requests_per_route(metrics, scrape) -> None:
    records = [metrics.start(CHAT) for _ in range(3)] + [metrics.start("/v1/completions")]
    assert scrape.value("ray_serving_requests_in_flight", route=CHAT) == 3
    assert scrape.value("ray_serving_requests_in_flight", route="/v1/completions") == 1
    records[0].finish(status_code=200, outcome="ok", prompt_tokens=1, completion_tokens=1)
    assert scrape.value("ray_serving_requests_in_flight", route=CHAT) == 2


def test_unknown_outcomes_raw_paths_and_odd_statuses_become_bounded_values(metrics, scrape) -> None:
    metrics.start("/v1/chat/completions?user=alice").finish(
        status_code=200, outcome="Prompt was: tell me a secret", prompt_tokens=1, completion_tokens=1
    )
    metrics.start(CHAT).finish(status_code=999, outcome="ok", prompt_tokens=1, completion_tokens=1)
    labels = {dict(k)["route"] + "|" + dict(k)["outcome"] + "|" + dict(k)["status_class"]
              for k in scrape.samples("ray_serving_requests_total")}
    assert labels == {"other|other|2xx", f"{CHAT}|ok|other"}


def test_route_label_values_are_capped(backend, scrape) -> None:
    metrics = RequestMetrics("tiny", backend=backend)
    for i in range(40):
        metrics.start(f"/v1/items/{i}").finish(status_code=404, outcome="client_error", prompt_tokens=0, completion_tokens=0)
    routes = {dict(k)["route"] for k in scrape.samples("ray_serving_requests_total")}
    assert len(routes) == 33 and "other" in routes


def test_model_info_is_published_at_construction(metrics, scrape) -> None:
    assert scrape.samples("ray_serving_model_info") == {frozenset({("model", "tiny"), ("version", "3")}): 1.0}


def test_request_metrics_records_no_feature_metric() -> None:
    # The features record their own (serving/{gateway,moderation,feedback,embeddings}/metrics.py).
    assert not hasattr(RequestMetrics, "feedback") and not hasattr(RequestMetrics, "moderation_block")
    assert all(spec.name.split("_")[1] not in {"gateway", "moderation", "feedback", "embeddings"} for spec in METRICS)


def test_every_declared_metric_is_exported_under_its_documented_name(metrics, scrape) -> None:
    record = metrics.start(CHAT)
    record.queue_wait(0.1)
    record.tokens(1)
    record.tokens(1)
    record.disconnected()
    record.finish(status_code=200, outcome="ok", prompt_tokens=1, completion_tokens=2)
    text = scrape.backend.exposition()
    for spec in METRICS:
        sample = spec.exported + ("_count" if spec.kind == "histogram" else "")
        assert f"\n{sample}{{" in text, sample
        assert spec.name.startswith("serving_") and spec.exported.startswith("ray_serving_")


def test_the_ttft_slo_threshold_is_a_bucket_bound() -> None:
    assert TTFT_SLO_THRESHOLD_S in TIME_TO_FIRST_TOKEN.buckets


def test_buckets_span_milliseconds_to_minutes() -> None:
    for spec in METRICS:
        if spec.kind == "histogram":
            assert list(spec.buckets) == sorted(spec.buckets)
            assert spec.buckets[0] <= 0.01 and spec.buckets[-1] >= 5


def test_the_pipeline_outcomes_are_all_known() -> None:
    import asyncio

    from serving.core.result import outcome_for
    from serving.errors import (
        ContentFilterError, EngineAbortedError, InvalidRequestError, OverloadedError, RateLimitError, RequestTimeoutError, ServerError,
    )

    errors = [None, RateLimitError("x"), OverloadedError("x"), ContentFilterError("x"), RequestTimeoutError("x"),
              ServerError("x"), EngineAbortedError("x"), asyncio.CancelledError(), InvalidRequestError("x")]
    assert {outcome_for(e)[1] for e in errors} == OUTCOMES


def test_without_ray_the_default_backend_records_nowhere_and_never_fails() -> None:
    import ray

    assert not ray.is_initialized()
    metrics = RequestMetrics("tiny")
    assert isinstance(metrics.backend, RayMetricsBackend)
    record = metrics.start(CHAT)
    record.queue_wait(0.1)
    record.tokens(3)
    record.tokens(2)
    record.disconnected()
    record.finish(status_code=200, outcome="ok", prompt_tokens=4, completion_tokens=5)
    assert not ray.is_initialized()  # recording did not start Ray
    assert metrics.backend.refresher._thread is None  # nor a refresh thread


def test_two_metrics_objects_share_one_registry_backend(backend, scrape) -> None:
    RequestMetrics("a", backend=backend).start(CHAT).finish(status_code=200, outcome="ok", prompt_tokens=1, completion_tokens=1)
    RequestMetrics("b", backend=backend).start(CHAT).finish(status_code=200, outcome="ok", prompt_tokens=1, completion_tokens=1)
    assert {dict(k)["model"] for k in scrape.samples("ray_serving_requests_total")} == {"a", "b"}
    assert isinstance(backend, PrometheusClientBackend)
