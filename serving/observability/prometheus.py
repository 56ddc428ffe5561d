"""A real Prometheus on loopback, scraping the running stack with the project's rules.

    python -m serving.observability.prometheus              # start it; Ctrl-C stops it
    python -m serving.observability.prometheus check-queries --url http://127.0.0.1:9090
    python -m serving.observability.prometheus render-k8s [--check]

``run`` starts Debian's ``prometheus`` binary (``apt-get install prometheus``) with
``deploy/prometheus/prometheus.yml``: the target is pointed at Ray's metrics export
port of the configured stack and rule files are made absolute. ``check-queries`` runs
every dashboard and rule expression through the HTTP API and reports the ones that
fail or return nothing. ``render-k8s`` wraps the rules into a PrometheusRule.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
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
K8S_RULE_PATH = REPO_ROOT / "deploy" / "prometheus" / "k8s" / "prometheusrule.serving.yaml"
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
        self._owns_dir = storage_dir is None
        self.workdir = Path(storage_dir or tempfile.mkdtemp(prefix="serving-prometheus-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's own log goes."""
        return self.workdir / "prometheus.log"

    def start(self, timeout_s: float = 30.0) -> "LocalPrometheus":
        """Write the config, start the server, return once it answers ``/-/ready``."""
        config = local_config(
            self.targets, scrape_interval=self.scrape_interval, evaluation_interval=self.evaluation_interval
        )
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [
            prometheus_binary(),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self.process.returncode}): {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
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
        if self._owns_dir:
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


def prometheus_rule_manifest(rules_dir: Path = RULES_DIR) -> dict[str, Any]:
    """The rule files' groups wrapped as a Prometheus Operator PrometheusRule."""
    groups = []
    for path in sorted(rules_dir.glob("*.y*ml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "llm-serving",
            "labels": {
                "app.kubernetes.io/name": "llm-serving",
                "app.kubernetes.io/component": "alerting",
                "app.kubernetes.io/part-of": "llm-serving",
            },
        },
        "spec": {"groups": groups},
    }


_K8S_HEADER = """\
# GENERATED from deploy/prometheus/rules/*.yaml by
#   python -m serving.observability.prometheus render-k8s
# Do not edit: change the rule files and re-render (a test checks for drift).
# Your Prometheus Operator must select it (ruleSelector), e.g. by the labels below.
"""


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as ``|`` blocks, as the rule files do."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_presenter)


def render_k8s_rule() -> str:
    """The PrometheusRule manifest as YAML text (with its generated-file header)."""
    body = yaml.dump(prometheus_rule_manifest(), Dumper=_BlockDumper, sort_keys=False, width=120)
    return _K8S_HEADER + body


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
    server.start()
    example = urllib.parse.quote("sum by (outcome) (rate(ray_serving_requests_total[1m]))")
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
    try:
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


def _render_k8s(args: argparse.Namespace) -> int:
    text = render_k8s_rule()
    if args.check:
        if not K8S_RULE_PATH.exists() or K8S_RULE_PATH.read_text() != text:
            print(f"{K8S_RULE_PATH} is stale: run python -m serving.observability.prometheus render-k8s", file=sys.stderr)
            return 1
        return 0
    K8S_RULE_PATH.parent.mkdir(parents=True, exist_ok=True)
    K8S_RULE_PATH.write_text(text)
    print(f"wrote {K8S_RULE_PATH}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m serving.observability.prometheus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="start Prometheus scraping the local stack (default)")
    run.add_argument("--config", help="settings/Serve config file (default: built-in settings + env)")
    run.add_argument("--target", help="host:port to scrape (default: 127.0.0.1:<ray.metrics_export_port>)")
    run.add_argument("--port", type=int, default=int(os.environ.get("PROMETHEUS_PORT", DEFAULT_PORT)))
    run.add_argument("--scrape-interval", default=None, help="e.g. 5s (default: the config file's)")
    run.add_argument("--storage", type=Path, default=None, help="data directory (default: a temp dir)")
    check = sub.add_parser("check-queries", help="run every dashboard/rule expression against a Prometheus")
    check.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    check.add_argument("--model", default=".*", help="value of the dashboards' $model variable")
    k8s = sub.add_parser("render-k8s", help="write the PrometheusRule manifest")
    k8s.add_argument("--check", action="store_true", help="fail if the committed manifest is stale")
    handlers = {"run": _run, "check-queries": _check_queries, "render-k8s": _render_k8s}
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
