"""The benchmark files shipped in loadtests/benchmark/ load, and their targets can run in turn."""

from __future__ import annotations

import re

import pytest

from loadtests.benchmark.config import BENCHMARK_DIR, load_benchmark

PACKAGED = sorted(BENCHMARK_DIR.glob("*.yaml"))
PORT_ENV = re.compile(r"(^|_)PORT$")


def test_the_speed_benchmark_is_shipped() -> None:
    assert "speed.yaml" in {p.name for p in PACKAGED}


@pytest.mark.parametrize("path", PACKAGED, ids=lambda p: p.name)
def test_a_packaged_benchmark_loads_with_distinct_target_ports(path) -> None:
    bench = load_benchmark(path)
    assert bench.baseline in {t.name for t in bench.targets}
    ports: list[int] = []
    for target in bench.targets:
        ports.append(target.port)
        # Other fixed ports a target binds (Ray's metrics export, Serve's proxy behind direct ingress).
        ports += [int(v) for k, v in target.env.items() if PORT_ENV.search(k) and v.isdigit()]
    assert len(ports) == len(set(ports)), f"{path.name}: targets share a port: {sorted(ports)}"
