"""A real Prometheus on loopback, scraping the running stack with the project's rules.

    python -m serving.observability.prometheus              # start it; Ctrl-C stops it
    python -m serving.observability.prometheus check-queries --url http://127.0.0.1:9090

``run`` starts Debian's ``prometheus`` binary (``apt-get install prometheus``) with
``deploy/prometheus/prometheus.yml``: the target is pointed at Ray's metrics export
port of the configured stack and rule files are made absolute. ``check-queries`` runs
every dashboard and rule expression through the HTTP API and reports the ones that
fail or return nothing. (On Kubernetes the same rule files become a PrometheusRule:
``k8s/base/generated/prometheusrule.yaml``, rendered by ``make k8s``.)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from serving.observability.expressions import REPO_ROOT, RULES_DIR, Expression, all_expressions

CONFIG_PATH = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
DEFAULT_PORT = 9090

# Grafana variables as the checks substitute them: every model, a window with data.
DEFAULT_VARIABLES = {"model": ".*", "application": ".*", "__rate_interval": "1m", "__range": "5m"}


class PrometheusError(RuntimeError):
    """Prometheus could not start, or answered a query with an error."""


def local_config(
    targets: Sequence[str],
    *,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    base: Path = CONFIG_PATH,
) -> dict[str, Any]:
    """``base`` with the Ray job's targets replaced, intervals set and rule files absolute."""
    config = yaml.safe_load(base.read_text())
    config["rule_files"] = [str((base.parent / p).resolve()) for p in config.get("rule_files", [])]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
    if evaluation_interval or scrape_interval:
        config["global"]["evaluation_interval"] = evaluation_interval or scrape_interval
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "ray"]
    job["static_configs"] = [{"targets": list(targets)}]
    return config


def prometheus_binary() -> str:
    """The path of the ``prometheus`` server binary, or a clear error how to get it."""
    found = shutil.which("prometheus")
    if not found:
        raise PrometheusError("the prometheus binary is not installed: apt-get install -y prometheus")
    return found


class LocalPrometheus:
    """A Prometheus server process on loopback with its own config and temporary storage."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        scrape_interval: str | None = None,
        evaluation_interval: str | None = None,
        storage_dir: Path | None = None,
    ) -> None:
        self.targets = list(targets)
        self.host, self.port = host, port
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self._storage_dir = storage_dir
        self.workdir: Path | None = None  # made by start(); a temp dir unless storage_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None  # time.monotonic() when it became ready

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's own log goes (inside the work dir)."""
        if self.workdir is None:
            raise PrometheusError("not started")
        return self.workdir / "prometheus.log"

    def start(self, timeout_s: float = 30.0) -> "LocalPrometheus":
        """Write the config, start the server, return once it answers ``/-/ready``."""
        binary = prometheus_binary()
        self.workdir = Path(self._storage_dir or tempfile.mkdtemp(prefix="serving-prometheus-"))
        try:
            self._launch(binary)
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.started_at = time.monotonic()
        return self

    def _launch(self, binary: str) -> None:
        config = local_config(
            self.targets, scrape_interval=self.scrape_interval, evaluation_interval=self.evaluation_interval
        )
        config_path = self.log_path.with_name("prometheus.yml")
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={config_path.parent / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self.process.returncode}): {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready after {timeout_s:.0f}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server and delete its temporary storage."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._storage_dir is None and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalPrometheus":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; the result vector (raises PrometheusError on any error)."""
        return query(self.url, expr)

    def targets_health(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        return _get(self.url, "/api/v1/targets")["activeTargets"]

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return "(no log)"


def _die_with_parent() -> None:
    """In the child: ask Linux to stop it when the Python process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop() still stops it on a normal exit


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """Instant query ``expr`` at ``url``; the result as a list of samples."""
    data = _get(url, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def _get(url: str, path: str) -> Any:
    try:
        with urllib.request.urlopen(url + path, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


@dataclass(frozen=True)
class QueryCheck:
    """What one expression returned: an error, nothing, only NaN, or data."""

    expression: Expression
    query: str
    error: str | None = None
    samples: int = 0
    finite: int = 0

    @property
    def ok(self) -> bool:
        """It parsed, ran and returned at least one finite sample."""
        return self.error is None and self.finite > 0

    def describe(self) -> str:
        """One line for a report."""
        if self.error:
            status = f"ERROR {self.error}"
        elif not self.samples:
            status = "NO DATA"
        elif not self.finite:
            status = "NaN only (no traffic in the window?)"
        else:
            status = f"ok ({self.samples} series)"
        return f"{self.expression.source}: {status}\n    {self.query}"


def check_expressions(
    url: str,
    expressions: Sequence[Expression] | None = None,
    variables: Mapping[str, str] = DEFAULT_VARIABLES,
) -> list[QueryCheck]:
    """Run every expression (default: all of the dashboards and rules) against ``url``."""
    checks = []
    for expression in expressions if expressions is not None else all_expressions():
        runnable = expression.runnable(variables)
        try:
            result = query(url, runnable)
        except PrometheusError as exc:
            checks.append(QueryCheck(expression, runnable, error=str(exc)))
            continue
        finite = sum(1 for sample in result if math.isfinite(float(sample["value"][1])))
        checks.append(QueryCheck(expression, runnable, samples=len(result), finite=finite))
    return checks


def _serving_target(config: str | None) -> str:
    """``127.0.0.1:<ray.metrics_export_port>`` of the configured stack."""
    from serving.config.settings import load_settings

    settings = load_settings(path=config) if config else load_settings()
    return f"127.0.0.1:{settings.ray.metrics_export_port}"


def _run(args: argparse.Namespace) -> int:
    target = args.target or _serving_target(args.config)
    server = LocalPrometheus(
        [target], port=args.port, scrape_interval=args.scrape_interval, storage_dir=args.storage
    )
    example = urllib.parse.quote("sum by (outcome) (rate(ray_serving_requests_total[1m]))")
    # SIGTERM (and SIGINT, which background jobs ignore) stop it cleanly: storage removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        print(
            f"Prometheus is running at {server.url} (data in {server.workdir})\n"
            f"  scraping  http://{target}/metrics  (Ray's metrics port: serving, vLLM and Serve metrics)\n"
            f"  targets   {server.url}/targets   (is the stack's metrics port up?)\n"
            f"  alerts    {server.url}/alerts    (rules: {RULES_DIR.relative_to(REPO_ROOT)})\n"
            f"  try       {server.url}/graph?g0.expr={example}\n"
            f"  check     python -m serving.observability.prometheus check-queries --url {server.url}\n"
            "  Grafana   import deploy/grafana/dashboards/*.json (datasource: this Prometheus)\n"
            "Metric reference: docs/metrics.md; runbook: docs/runbook.md. Ctrl-C stops it.",
            flush=True,
        )
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print(f"prometheus exited: see {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _check_queries(args: argparse.Namespace) -> int:
    variables = {**DEFAULT_VARIABLES, "model": args.model}
    checks = check_expressions(args.url, variables=variables)
    for check in checks:
        print(check.describe())
    bad = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(bad)}/{len(checks)} expressions returned data")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m serving.observability.prometheus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="start Prometheus scraping the local stack (default)")
    run.add_argument("--config", help="settings/Serve config file (default: built-in settings + env)")
    run.add_argument("--target", help="host:port to scrape (default: 127.0.0.1:<ray.metrics_export_port>)")
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help="where Prometheus listens on 127.0.0.1")
    run.add_argument("--scrape-interval", default=None, help="e.g. 5s (default: the config file's)")
    run.add_argument("--storage", type=Path, default=None, help="data directory (default: a temp dir)")
    check = sub.add_parser("check-queries", help="run every dashboard/rule expression against a Prometheus")
    check.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    check.add_argument("--model", default=".*", help="value of the dashboards' $model variable")
    handlers = {"run": _run, "check-queries": _check_queries}
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in handlers and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")  # `run` is the default command
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
