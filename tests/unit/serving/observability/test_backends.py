"""The metric backends: Ray's (with its gauge refresher) and prometheus-client's."""

from __future__ import annotations

import pytest

from serving.observability.backends import (
    PrometheusClientBackend,
    RayMetricsBackend,
    _GaugeRefresher,
    refresh_interval_s,
)
from serving.observability.metrics import IN_FLIGHT, MODEL_INFO, REQUESTS


def test_ray_gauges_remember_their_last_value_per_series_and_record_it_again() -> None:
    backend = RayMetricsBackend(gauge_refresh_s=0.01)
    gauge = backend.instrument(IN_FLIGHT)
    recorded: list[tuple[float, dict]] = []
    gauge._record = lambda value, tags: recorded.append((value, tags))  # type: ignore[attr-defined]
    gauge.record(2, {"model": "m", "route": "/a"})
    gauge.record(5, {"model": "m", "route": "/b"})
    gauge.record(1, {"model": "m", "route": "/a"})
    recorded.clear()
    backend.refresher.refresh_once()
    assert sorted(recorded, key=lambda r: r[1]["route"]) == [
        (1, {"model": "m", "route": "/a"}),
        (5, {"model": "m", "route": "/b"}),
    ]


def test_only_gauges_are_refreshed() -> None:
    backend = RayMetricsBackend()
    backend.instrument(REQUESTS)
    info = backend.instrument(MODEL_INFO)
    assert list(backend.refresher.gauges) == [info]


def test_the_refresh_interval_follows_rays_report_interval() -> None:
    assert refresh_interval_s(10_000) == 5.0  # Ray's default: gauges dropped after ~20 s
    assert refresh_interval_s(2_000) == 1.0
    assert refresh_interval_s(100) == 0.5
    assert refresh_interval_s(60_000) == 5.0
    assert _GaugeRefresher(3.0).interval() == 3.0


def test_the_refresh_thread_runs_only_with_ray_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    backend = RayMetricsBackend(gauge_refresh_s=0.01)
    gauge = backend.instrument(MODEL_INFO)
    calls: list[float] = []
    gauge._record = lambda value, tags: calls.append(value)  # type: ignore[attr-defined]
    gauge.record(1, {"model": "m", "version": "1"})
    assert backend.refresher._thread is None  # no Ray: nothing exports, nothing to refresh
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    gauge.record(1, {"model": "m", "version": "1"})
    thread = backend.refresher._thread
    assert thread is not None and thread.daemon
    import time

    deadline = time.monotonic() + 5
    while len(calls) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) >= 5
    backend.close()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_prometheus_client_backend_makes_each_metric_once() -> None:
    backend = PrometheusClientBackend()
    assert backend.instrument(REQUESTS) is backend.instrument(REQUESTS)
    backend.instrument(REQUESTS).record(2, {"model": "m", "route": "/r", "status_class": "2xx", "outcome": "ok"})
    assert 'ray_serving_requests_total{model="m",outcome="ok",route="/r",status_class="2xx"} 2.0' in backend.exposition()
