"""The probes and the preStop drain that run inside the Ray pods (serving/tools/ray_pod.py).

The HTTP answers of Ray and Serve are given as recorded results (no cluster here); the
decisions on them, the /proc/net/tcp and metrics parsing and the drain timing are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.tools import ray_pod
from serving.tools.ray_pod import DrainPlan, HTTPResult

OK = HTTPResult(200, "success")


def fetcher(answers: dict[str, HTTPResult]):
    """A fetch function answering by URL path suffix; records the URLs asked."""
    asked: list[str] = []

    def fetch(url: str, timeout_s: float) -> HTTPResult:
        asked.append(url)
        for suffix, result in answers.items():
            if url.endswith(suffix):
                return result
        return HTTPResult(None, refused=True, error="connection refused")

    fetch.asked = asked  # type: ignore[attr-defined]
    return fetch


HEALTHY_WORKER = {
    "/api/local_raylet_healthz": OK,
    ":8000/-/healthz": HTTPResult(200, "success"),
    ":8000/ready": HTTPResult(200, '{"status":"ready"}'),
}


def test_worker_ready_needs_raylet_proxy_and_app():
    fetch = fetcher(HEALTHY_WORKER)
    assert ray_pod.readiness_failures("worker", 8000, fetch, 2.0) == []
    assert fetch.asked == [
        "http://127.0.0.1:52365/api/local_raylet_healthz",
        "http://127.0.0.1:8000/-/healthz",
        "http://127.0.0.1:8000/ready",
    ]


@pytest.mark.parametrize(
    ("broken", "result", "reason"),
    [
        ("/api/local_raylet_healthz", HTTPResult(None, error="TimeoutError"), "raylet: TimeoutError"),
        ("/api/local_raylet_healthz", HTTPResult(200, "not ok"), "raylet: 200"),
        (":8000/-/healthz", HTTPResult(503, "This node is being drained."), "proxy /-/healthz: 503"),
        (":8000/ready", HTTPResult(503, "{}"), "app /ready: 503"),
        (":8000/ready", HTTPResult(None, refused=True, error="connection refused"), "app /ready: connection refused"),
    ],
)
def test_worker_not_ready(broken, result, reason):
    fetch = fetcher({**HEALTHY_WORKER, broken: result})
    assert ray_pod.readiness_failures("worker", 8000, fetch, 2.0) == [reason]


def test_head_checks_raylet_and_gcs_only():
    fetch = fetcher({"/api/local_raylet_healthz": OK, ":8265/api/gcs_healthz": OK})
    assert ray_pod.readiness_failures("head", 8000, fetch, 2.0) == []
    assert ray_pod.liveness_failures("head", 8000, fetch, 2.0) == []
    assert not any(":8000" in url for url in fetch.asked)
    down = fetcher({"/api/local_raylet_healthz": OK, ":8265/api/gcs_healthz": HTTPResult(503, "")})
    assert ray_pod.readiness_failures("head", 8000, down, 2.0) == ["gcs: 503"]


@pytest.mark.parametrize(
    ("proxy", "alive"),
    [
        (HTTPResult(200, "success"), True),
        (HTTPResult(503, "draining"), True),  # draining: finish streams, do not kill
        (HTTPResult(None, refused=True, error="connection refused"), True),  # no replica, no proxy
        (HTTPResult(None, error="TimeoutError"), False),  # hung proxy
        (HTTPResult(500, "boom"), False),
    ],
)
def test_worker_liveness(proxy, alive):
    fetch = fetcher({"/api/local_raylet_healthz": OK, ":8000/-/healthz": proxy})
    assert (ray_pod.liveness_failures("worker", 8000, fetch, 2.0) == []) is alive


def test_dead_raylet_fails_liveness():
    fetch = fetcher({"/api/local_raylet_healthz": HTTPResult(None, refused=True, error="connection refused")})
    assert ray_pod.liveness_failures("worker", 8000, fetch, 2.0) == ["raylet: connection refused"]


def test_main_exit_codes(capsys):
    assert ray_pod.main(["ready", "--node", "worker"], fetch=fetcher(HEALTHY_WORKER)) == 0
    assert ray_pod.main(["ready", "--node", "worker"], fetch=fetcher({})) == 1
    assert "raylet: connection refused" in capsys.readouterr().out


METRICS = """\
# HELP ray_serve_num_ongoing_http_requests The number of ongoing requests in this HTTP Proxy.
# TYPE ray_serve_num_ongoing_http_requests gauge
ray_serve_num_ongoing_http_requests{node_id="a",node_ip_address="10.0.0.5"} 2.0
ray_serve_replica_processing_queries{deployment="LLM",replica="r1"} 3.0
ray_serve_replica_processing_queries{deployment="LLM",replica="r2"} NaN
ray_serve_num_ongoing_http_requests_total 100.0
ray_serving_requests_total{model="m"} 7.0
"""


def test_inflight_sums_the_proxy_and_replica_gauges():
    assert ray_pod.inflight_from_metrics(METRICS) == 5.0
    assert ray_pod.inflight_from_metrics("") == 0.0


def test_inflight_counts_connections_and_gauges(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(PROC_TCP)
    fetch = fetcher({":8080/metrics": HTTPResult(200, METRICS)})
    assert ray_pod.inflight(8000, 8080, fetch, [table]) == 2 + 5.0
    assert ray_pod.inflight(8000, 8080, fetcher({}), [table]) == 2  # metrics unreadable
    assert ray_pod.inflight(8001, 8080, fetch, [table]) == 5.0


PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1
   1: 0501000A:1F40 0701000A:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1
   2: 0501000A:1F40 0801000A:D432 01 00000000:00000000 00:00000000 00000000  1000        0 3 1
   3: 0501000A:1F40 0901000A:D433 06 00000000:00000000 00:00000000 00000000  1000        0 4 1
   4: 0501000A:1F90 0701000A:D434 01 00000000:00000000 00:00000000 00000000  1000        0 5 1
"""


def test_established_connections_counts_only_the_serve_port(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(PROC_TCP)
    # Two established on :8000 (0x1F40); the listener, a TIME_WAIT and :8080 do not count.
    assert ray_pod.established_connections(8000, [table, tmp_path / "missing"]) == 2
    assert ray_pod.established_connections(8080, [table]) == 1


def test_established_connections_reads_this_machine():
    assert ray_pod.established_connections(1, [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]) >= 0


class FakeClock:
    """Deterministic time for the drain loop."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_drain_waits_for_streams_then_a_quiet_window():
    clock = FakeClock()
    busy_until = 42.0
    plan = DrainPlan(timeout_s=300, deregister_s=5, poll_s=2, quiet_s=10)
    assert ray_pod.drain(plan, lambda: 1.0 if clock.now < busy_until else 0.0, clock.time, clock.sleep)
    assert busy_until + plan.quiet_s <= clock.now <= busy_until + plan.quiet_s + plan.poll_s


def test_idle_pod_leaves_quickly():
    clock = FakeClock()
    plan = DrainPlan(timeout_s=600)
    assert ray_pod.drain(plan, lambda: 0.0, clock.time, clock.sleep)
    assert clock.now <= plan.deregister_s + plan.quiet_s + plan.poll_s


def test_drain_gives_up_at_the_longest_generation():
    clock = FakeClock()
    plan = DrainPlan(timeout_s=60, deregister_s=5)
    assert not ray_pod.drain(plan, lambda: 1.0, clock.time, clock.sleep)
    assert clock.now == pytest.approx(plan.deregister_s + plan.timeout_s)


def test_a_new_request_restarts_the_quiet_window():
    clock = FakeClock()
    pattern = {13.0: 1.0}  # quiet from t=5 s (after deregistering), one request seen at t=13 s
    plan = DrainPlan(timeout_s=300, deregister_s=5, poll_s=2, quiet_s=10)
    assert ray_pod.drain(plan, lambda: pattern.get(clock.now, 0.0), clock.time, clock.sleep)
    assert clock.now >= 13.0 + plan.quiet_s


def test_drain_command_always_exits_zero(monkeypatch, capsys):
    monkeypatch.setattr(ray_pod, "drain", lambda plan, busy: False)
    assert ray_pod.main(["drain", "--timeout", "1"], fetch=fetcher({})) == 0
    assert "deadline" in capsys.readouterr().out


def test_http_get_reports_refused_on_a_closed_port():
    result = ray_pod.http_get("http://127.0.0.1:1/health", 1.0)
    assert result.status is None and result.refused
