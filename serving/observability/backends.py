"""Where metric values go: Ray's metrics system (production) or a prometheus-client registry.

``RayMetricsBackend`` records through ``ray.serve.metrics``; inside a Serve replica Ray
exports the values on its metrics port with the ``ray_`` prefix and Serve's
application/deployment/replica tags. Outside a replica, or with no Ray running, the
calls are accepted and go nowhere. ``PrometheusClientBackend`` records into a
``prometheus_client`` registry under the same exported names, for tests and for runs
without Ray. (A plain prometheus-client metric inside a replica is not exported by Ray.)
"""

from __future__ import annotations

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
    def __init__(self, spec: "MetricSpec") -> None:
        from ray.serve import metrics as serve_metrics

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


class RayMetricsBackend:
    """Records through ``ray.serve.metrics`` (exported on Ray's metrics port)."""

    def instrument(self, spec: "MetricSpec") -> Instrument:
        """A Ray Serve Counter/Gauge/Histogram for ``spec``."""
        return _RayInstrument(spec)


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
