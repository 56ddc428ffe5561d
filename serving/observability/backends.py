"""Where metric values go: Ray's metrics system (production) or a prometheus-client registry.

``RayMetricsBackend`` records through ``ray.serve.metrics``; inside a Serve replica Ray
exports the values on its metrics port with the ``ray_`` prefix and Serve's
application/deployment/replica tags. Outside a replica, or with no Ray running, the
calls are accepted and go nowhere. ``PrometheusClientBackend`` records into a
``prometheus_client`` registry under the same exported names, for tests and for runs
without Ray. (A plain prometheus-client metric inside a replica is not exported by Ray.)

Ray 2.60 forgets a gauge about two report intervals (~20 s) after its last ``set``
(measured: a gauge set once vanished from the port within 30 s). The Ray backend
therefore re-records every gauge's last values every few seconds from a daemon
thread, so ``serving_model_info`` and an idle replica's in-flight count stay visible.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Mapping, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from serving.observability.metrics import MetricSpec


class Instrument(Protocol):
    """One declared metric: ``record`` increments a counter, observes a histogram or sets a gauge."""

    def record(self, value: float, labels: Mapping[str, str]) -> None:
        """Record ``value`` for the series named by ``labels``."""
        ...


class MetricsBackend(Protocol):
    """Makes the instrument of a metric spec."""

    def instrument(self, spec: "MetricSpec") -> Instrument:
        """The instrument that records ``spec``."""
        ...


class _RayInstrument:
    def __init__(self, spec: "MetricSpec", on_gauge_set: "_GaugeRefresher | None" = None) -> None:
        from ray.serve import metrics as serve_metrics

        self._refresher = on_gauge_set if spec.kind == "gauge" else None
        self.last: dict[tuple[tuple[str, str], ...], float] = {}
        if spec.kind == "counter":
            metric = serve_metrics.Counter(spec.name, description=spec.description, tag_keys=spec.labels)
            self._record = metric.inc
        elif spec.kind == "gauge":
            metric = serve_metrics.Gauge(spec.name, description=spec.description, tag_keys=spec.labels)
            self._record = metric.set
        else:
            metric = serve_metrics.Histogram(
                spec.name, description=spec.description, boundaries=list(spec.buckets), tag_keys=spec.labels
            )
            self._record = metric.observe
        self.metric = metric

    def record(self, value: float, labels: Mapping[str, str]) -> None:
        self._record(value, tags=dict(labels))
        if self._refresher is not None:
            self.last[tuple(sorted(labels.items()))] = value
            self._refresher.ensure_running()

    def refresh(self) -> None:
        """Record every gauge series' last value again (Ray drops gauges not set lately)."""
        for key, value in list(self.last.items()):
            self._record(value, tags=dict(key))


def refresh_interval_s(report_interval_ms: int) -> float:
    """Half of Ray's report interval, between 0.5 and 5 seconds: every export sees a fresh value."""
    return min(5.0, max(0.5, report_interval_ms / 2000))


class _GaugeRefresher:
    """A daemon thread that re-records the gauges of one backend while Ray runs."""

    def __init__(self, interval_s: float | None) -> None:
        self.interval_s = interval_s
        self.gauges: "weakref.WeakSet[_RayInstrument]" = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the thread once, and only where Ray exports metrics (a running Ray)."""
        if self._thread is not None:
            return
        import ray

        if not ray.is_initialized():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="serving-gauge-refresh", daemon=True)
                self._thread.start()

    def interval(self) -> float:
        """Half of Ray's report interval, between 0.5 and 5 seconds (unless set)."""
        if self.interval_s is not None:
            return self.interval_s
        import ray

        return refresh_interval_s(ray._config.metrics_report_interval_ms())

    def refresh_once(self) -> None:
        """Re-record every gauge now."""
        for gauge in list(self.gauges):
            gauge.refresh()

    def stop(self) -> None:
        """Stop the thread (tests; replicas just exit)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval()):
            self.refresh_once()


class RayMetricsBackend:
    """Records through ``ray.serve.metrics`` (exported on Ray's metrics port)."""

    def __init__(self, *, gauge_refresh_s: float | None = None) -> None:
        self.refresher = _GaugeRefresher(gauge_refresh_s)

    def instrument(self, spec: "MetricSpec") -> Instrument:
        """A Ray Serve Counter/Gauge/Histogram for ``spec``."""
        instrument = _RayInstrument(spec, self.refresher)
        if spec.kind == "gauge":
            self.refresher.gauges.add(instrument)
        return instrument

    def close(self) -> None:
        """Stop re-recording gauges."""
        self.refresher.stop()


class _ClientInstrument:
    def __init__(self, metric: object, kind: str) -> None:
        self.metric = metric
        self.kind = kind

    def record(self, value: float, labels: Mapping[str, str]) -> None:
        child = self.metric.labels(**labels)  # type: ignore[attr-defined]
        if self.kind == "counter":
            child.inc(value)
        elif self.kind == "gauge":
            child.set(value)
        else:
            child.observe(value)


class PrometheusClientBackend:
    """Records into a prometheus-client registry under Ray's exported names (``ray_`` prefix)."""

    def __init__(self, registry: "CollectorRegistry | None" = None, *, prefix: str = "ray_") -> None:
        from prometheus_client import CollectorRegistry

        self.registry = registry if registry is not None else CollectorRegistry()
        self.prefix = prefix
        self._made: dict[str, _ClientInstrument] = {}

    def instrument(self, spec: "MetricSpec") -> Instrument:
        """The prometheus-client metric for ``spec`` (made once per registry)."""
        if spec.name not in self._made:
            import prometheus_client as pc

            name = f"{self.prefix}{spec.name}"
            labels = list(spec.labels)
            if spec.kind == "counter":
                metric: object = pc.Counter(name, spec.description, labels, registry=self.registry)
            elif spec.kind == "gauge":
                metric = pc.Gauge(name, spec.description, labels, registry=self.registry)
            else:
                metric = pc.Histogram(name, spec.description, labels, buckets=spec.buckets, registry=self.registry)
            self._made[spec.name] = _ClientInstrument(metric, spec.kind)
        return self._made[spec.name]

    def exposition(self) -> str:
        """The registry in Prometheus text format (what a scrape would return)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
