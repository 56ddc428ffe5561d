"""Fixtures of the observability unit tests: metrics recorded into a readable registry."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.observability.backends import PrometheusClientBackend
from serving.observability.metrics import RequestMetrics


class Scrape:
    """The samples of a PrometheusClientBackend, by exported name and labels."""

    def __init__(self, backend: PrometheusClientBackend) -> None:
        self.backend = backend

    def samples(self, name: str) -> dict[frozenset, float]:
        """``{frozenset(labels.items()): value}`` of every sample called ``name``."""
        out: dict[frozenset, float] = {}
        for family in text_string_to_metric_families(self.backend.exposition()):
            for sample in family.samples:
                if sample.name == name:
                    out[frozenset(sample.labels.items())] = sample.value
        return out

    def value(self, name: str, **labels: str) -> float:
        """The one sample of ``name`` whose labels include ``labels`` (0 if none)."""
        found = [v for k, v in self.samples(name).items() if set(labels.items()) <= set(k)]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else 0.0


@pytest.fixture
def backend() -> PrometheusClientBackend:
    return PrometheusClientBackend()


@pytest.fixture
def scrape(backend: PrometheusClientBackend) -> Scrape:
    return Scrape(backend)


@pytest.fixture
def metrics(backend: PrometheusClientBackend) -> RequestMetrics:
    return RequestMetrics("tiny", version="3", backend=backend)
