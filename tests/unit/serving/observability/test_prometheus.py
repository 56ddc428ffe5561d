"""The local Prometheus: config, a real server scraping real metrics, the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import start_http_server

from serving.observability.backends import PrometheusClientBackend
from serving.observability.expressions import REPO_ROOT, Expression
from serving.observability.metrics import RequestMetrics
from serving.observability.prometheus import (
    LocalPrometheus,
    PrometheusError,
    check_expressions,
    local_config,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_config_points_the_ray_job_at_the_targets_with_absolute_rules() -> None:
    config = local_config(["127.0.0.1:18280"], scrape_interval="1s")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ray" and job["static_configs"] == [{"targets": ["127.0.0.1:18280"]}]
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1s"
    assert [Path(p) for p in config["rule_files"]] == [REPO_ROOT / "deploy/prometheus/rules/serving-alerts.yaml"]
    # The committed file scrapes the default metrics export port of the settings.
    committed = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    from serving.config.settings import RaySettings

    port = RaySettings().metrics_export_port
    assert committed["scrape_configs"][0]["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]


@pytest.fixture(scope="module")
def exporter() -> tuple[str, RequestMetrics]:
    """Our metrics on a real HTTP exposition endpoint (prometheus-client), with traffic."""
    backend = PrometheusClientBackend()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=backend.registry)
    metrics = RequestMetrics("tiny", version="2", backend=backend)
    yield f"127.0.0.1:{port}", metrics
    server.shutdown()


def test_a_real_prometheus_scrapes_our_metrics_and_evaluates_the_rules(exporter) -> None:
    target, metrics = exporter
    with LocalPrometheus([target], port=free_port(), scrape_interval="1s") as prometheus:
        workdir = prometheus.workdir
        deadline = time.monotonic() + 30
        result: list = []
        while time.monotonic() < deadline and not result:
            record = metrics.start("/v1/chat/completions")
            record.tokens(1)
            record.finish(status_code=200, outcome="ok", prompt_tokens=3, completion_tokens=1)
            result = prometheus.query('model:serving_availability_errors:ratio_rate5m{model="tiny"}')
            time.sleep(0.5)
        assert result and float(result[0]["value"][1]) == 0.0  # every request was good
        (health,) = prometheus.targets_health()
        assert health["health"] == "up" and health["labels"]["job"] == "ray"
        info = prometheus.query("ray_serving_model_info")
        assert info[0]["metric"]["version"] == "2"
        with pytest.raises(PrometheusError, match="bad_data"):
            prometheus.query("sum(rate(ray_serving_requests_total[5m])")  # a typo'd expression
        checks = check_expressions(
            prometheus.url,
            [
                Expression("t: ok", "sum(ray_serving_requests_total)", "panel"),
                Expression("t: typo", "sum(ray_serving_request_total)", "panel"),
                Expression("t: broken", "sum(", "panel"),
            ],
        )
        assert [c.ok for c in checks] == [True, False, False]
        assert "NO DATA" in checks[1].describe() and "ERROR" in checks[2].describe()
        pid = prometheus.process.pid
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_binary_is_a_clear_error_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tempfile

    import serving.observability.prometheus as module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    with pytest.raises(PrometheusError, match="apt-get install"):
        LocalPrometheus(["127.0.0.1:1"], port=free_port()).start()
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_cannot_start_is_a_clear_error_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = LocalPrometheus(["127.0.0.1:1"], port=busy.getsockname()[1])
        with pytest.raises(PrometheusError, match="exited"):
            server.start()
    assert server.process is None and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_command_starts_prometheus_prints_where_to_look_and_stops_cleanly(exporter, stop: int) -> None:
    target, _ = exporter
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.observability.prometheus", "--target", target, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        # Like a shell's foreground job (background jobs of scripts ignore SIGINT).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    try:
        lines = [process.stdout.readline() for _ in range(8)]
    finally:
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0, process.stderr.read()
    text = "".join(lines)
    assert f"Prometheus is running at http://127.0.0.1:{port}" in text
    assert f"http://{target}/metrics" in text and f"http://127.0.0.1:{port}/alerts" in text
    workdir = Path(text.split("(data in ")[1].split(")")[0])
    assert not workdir.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
