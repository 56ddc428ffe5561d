"""A real Prometheus scraping the real stack: every dashboard and rule expression has data.

Prometheus (Debian's binary) runs on a free loopback port with the project's rules,
a 1 s scrape interval and temporary storage, scraping Ray's metrics port of the
tiny-model stack. Traffic covers successes, a stream, a client error, an unknown
route, a client that disconnects mid-stream and a repeated long prompt (prefix cache
hits). Then EVERY expression of deploy/grafana/dashboards/*.json and
deploy/prometheus/rules/*.yaml runs through /api/v1/query and must return finite data.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable, Iterator

import httpx
import pytest

from serving.observability.expressions import all_expressions, metric_names
from serving.observability.prometheus import LocalPrometheus, QueryCheck, check_expressions
from tests.conftest import APP_NAME, Stack, free_port

# Wider than the dashboards' usual $__rate_interval so the checks still see the traffic
# of the last round while they run; the expressions themselves are unchanged.
VARIABLES = {"__rate_interval": "2m", "__range": "5m", "application": APP_NAME}
ROUNDS = 8  # traffic rounds at most (each a few seconds); Ray exports every few seconds
ROUND_PAUSE_S = 4.0
# A marker in every prompt: it must never show up in any metric.
PROMPT_MARKER = "zebra-quokka-7731"
LONG_PROMPT = " ".join(["The quick brown fox jumps over the lazy dog."] * 40) + " " + PROMPT_MARKER


class Traffic:
    """One round of the request mix; remembers the request ids it used."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(base_url=stack.base_url, timeout=60)
        self.request_ids: list[str] = []
        self.paths: list[str] = []  # raw URLs of unknown routes: never a label value

    def _headers(self) -> dict[str, str]:
        request_id = f"obs-test-{uuid.uuid4().hex}"
        self.request_ids.append(request_id)
        return {"x-request-id": request_id}

    def _chat(self, content: str, **extra: object) -> dict:
        return {"model": self.stack.model, "messages": [{"role": "user", "content": content}], **extra}

    def round(self) -> None:
        """Successes, a stream, errors, a disconnect and a repeated long prompt."""
        for i in range(3):
            response = self.client.post(
                "/v1/chat/completions", json=self._chat(f"hello {i} {PROMPT_MARKER}", max_tokens=8), headers=self._headers()
            )
            assert response.status_code == 200, response.text
        response = self.client.post(
            "/v1/completions",
            json={"model": self.stack.model, "prompt": LONG_PROMPT, "max_tokens": 4},
            headers=self._headers(),
        )
        assert response.status_code == 200, response.text
        with self.client.stream(
            "POST", "/v1/chat/completions", json=self._chat(PROMPT_MARKER, max_tokens=16, stream=True), headers=self._headers()
        ) as stream:
            assert stream.status_code == 200
            assert any(line.startswith("data: [DONE]") for line in stream.iter_lines())
        bad = self.client.post(
            "/v1/chat/completions", json=self._chat(PROMPT_MARKER, temperature=-1), headers=self._headers()
        )
        assert bad.status_code == 400, bad.text
        self.paths.append(f"/v1/no-such-route/{uuid.uuid4().hex}")
        assert self.client.get(self.paths[-1], headers=self._headers()).status_code == 404
        self._disconnect_mid_stream()

    def _disconnect_mid_stream(self) -> None:
        """Read one chunk of a long stream, then hang up."""
        body = self._chat(PROMPT_MARKER, max_tokens=400, stream=True, temperature=1.0)
        with self.client.stream("POST", "/v1/chat/completions", json=body, headers=self._headers()) as stream:
            assert stream.status_code == 200
            next(stream.iter_raw())
        # Closing the response closed the connection: the server aborts the engine request.


@pytest.fixture(scope="module")
def observed(deploy_stack: Callable[..., Stack]) -> Iterator[tuple[LocalPrometheus, Stack, list[QueryCheck], Traffic]]:
    """The stack under traffic, a Prometheus scraping it, and the final expression checks."""
    stack = deploy_stack()
    target = stack.metrics_url.removeprefix("http://").removesuffix("/metrics")
    with LocalPrometheus([target], port=free_port(), scrape_interval="1s", evaluation_interval="1s") as prometheus:
        traffic = Traffic(stack)
        variables = {**VARIABLES, "model": stack.model}
        checks: list[QueryCheck] = []
        # Counters only show a rate once Prometheus saw them before and after an
        # increase, so send rounds until every expression has data (bounded).
        for _ in range(ROUNDS):
            traffic.round()
            time.sleep(ROUND_PAUSE_S)
            checks = check_expressions(prometheus.url, variables=variables)
            if all(check.ok for check in checks):
                break
        yield prometheus, stack, checks, traffic
        traffic.client.close()


def test_the_scrape_target_is_up(observed) -> None:
    prometheus, stack, _, _ = observed
    (target,) = prometheus.targets_health()
    assert target["health"] == "up", target["lastError"]
    assert target["labels"]["job"] == "ray"
    assert prometheus.query('up{job="ray"}')[0]["value"][1] == "1"


def test_every_dashboard_and_rule_expression_returns_data(observed) -> None:
    _, _, checks, _ = observed
    expressions = all_expressions()
    assert len(checks) == len(expressions) > 40  # rules + panels + variables, none skipped
    bad = [check.describe() for check in checks if not check.ok]
    assert not bad, "expressions without data:\n" + "\n".join(bad)


def test_every_metric_an_expression_reads_exists(observed) -> None:
    prometheus, _, _, _ = observed
    names = set().union(*(metric_names(e.expr) for e in all_expressions()))
    assert {"ray_serving_requests_total", "ray_vllm_kv_cache_usage_perc", "ray_serve_deployment_replica_healthy"} <= names
    missing = sorted(name for name in names if not prometheus.query(f"count({name})"))
    assert not missing, f"metrics read by dashboards/rules but absent in Prometheus: {missing}"


def test_rules_evaluate_without_errors(observed) -> None:
    prometheus, _, _, _ = observed
    groups = httpx.get(f"{prometheus.url}/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == sum(1 for e in all_expressions() if e.kind in ("alert", "record"))
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not unhealthy
    # A healthy stack under light traffic pages nobody.
    firing = [rule["name"] for rule in rules if rule.get("state") == "firing"]
    assert not firing


def test_client_side_outcomes_are_counted(observed) -> None:
    prometheus, stack, _, _ = observed
    outcomes = {
        sample["metric"]["outcome"]: float(sample["value"][1])
        for sample in prometheus.query(f'sum by (outcome) (ray_serving_requests_total{{model="{stack.model}"}})')
    }
    assert outcomes.get("ok", 0) >= 6
    assert outcomes.get("client_error", 0) >= 2  # the 400 and the 404 of each round
    assert outcomes.get("aborted", 0) >= 1
    disconnects = prometheus.query(f'sum(ray_serving_client_disconnects_total{{model="{stack.model}"}})')
    assert float(disconnects[0]["value"][1]) >= 1
    info = prometheus.query(f'ray_serving_model_info{{model="{stack.model}"}}')
    assert {s["metric"]["version"] for s in info} == {stack.settings.model.version}


# Ray and Serve add these tags to every application metric; each is bounded by the
# number of processes, nodes or deployments (never by requests).
RAY_TAGS = {
    "Component", "NodeAddress", "SessionName", "Version", "WorkerId",
    "application", "deployment", "replica",
    "otel_scope_name", "otel_scope_schema_url", "otel_scope_version",
}


def test_our_metric_labels_are_bounded(observed) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from serving.observability.metrics import METRICS, OUTCOMES

    _, stack, _, traffic = observed
    text = httpx.get(stack.metrics_url, timeout=30).text
    # Ray keeps exporting series of this session's earlier deployments, some of which served
    # /v1/embeddings (off here): a real route of ours, so still a bounded label.
    routes = set(httpx.get(f"{stack.base_url}/openapi.json").json()["paths"]) | {"unmatched", "/v1/embeddings"}
    allowed = {
        "model": {stack.model},
        "route": routes,
        "status_class": {"2xx", "4xx", "5xx"},
        "outcome": set(OUTCOMES),
        "version": {stack.settings.model.version},
    }
    specs = {spec.exported.removesuffix("_total"): spec for spec in METRICS}
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        spec = specs.get(family.name)
        if spec is None:
            continue
        for sample in family.samples:
            labels = dict(sample.labels)
            labels.pop("le", None)
            assert set(labels) - RAY_TAGS == set(spec.labels), (family.name, labels)
            for key in spec.labels:
                seen.setdefault(key, set()).add(labels[key])
                if key in allowed:
                    assert labels[key] in allowed[key], (family.name, key, labels[key])
    assert {"/v1/chat/completions", "/v1/completions"} <= seen["route"]
    # Nothing a client sent is a label value anywhere on the port (ours, vLLM's, Serve's).
    assert PROMPT_MARKER not in text
    leaked = [value for value in traffic.request_ids + traffic.paths if value in text]
    assert not leaked


def test_request_logs_are_json_lines_without_text(observed) -> None:
    import json

    _, stack, _, traffic = observed
    wanted = set(traffic.request_ids)
    found: dict[str, dict] = {}
    for path in stack.log_dir.rglob("*"):
        if not path.is_file():
            continue
        content = path.read_text(errors="replace")
        assert PROMPT_MARKER not in content, f"prompt text in {path}"
        for line in content.splitlines():
            if '"request_id"' in line and "obs-test-" in line:
                record = json.loads(line[line.index("{"):])
                if record.get("request_id") in wanted:
                    found[record["request_id"]] = record
    assert found, "no JSON request log line of the test's requests (configure_logging wired in the replica?)"
    statuses = {record["status_code"] for record in found.values()}
    assert {200, 400} <= statuses
    for record in found.values():
        assert record["model"] == stack.model
        assert record["outcome"] and (record["route"].startswith("/") or record["route"] == "unmatched")
        assert isinstance(record["latency_s"], float) and record["latency_s"] >= 0
        assert set(record) >= {"ts", "level", "request_id", "prompt_tokens", "completion_tokens", "ttft_s"}


def test_our_gauges_stay_exported_while_the_replica_idles(observed) -> None:
    """Ray forgets a gauge ~20 s after its last set; ours are re-recorded, so they stay.

    serving_model_info is set once, when the replica starts; without the refresher it
    would be gone from any 30 s window after that.
    """
    prometheus, stack, _, _ = observed
    window_s = 30  # longer than a gauge lives in Ray without being set again (~20-30 s)
    wait = prometheus.started_at + window_s + 2 - time.monotonic()
    if wait > 0:
        time.sleep(wait)  # bounded: at most the window, once per session
    present = prometheus.query(f'count_over_time(ray_serving_model_info{{model="{stack.model}"}}[{window_s}s])')
    assert present, "ray_serving_model_info vanished"
    # Compare with the scrapes that succeeded in the same window (on a busy machine Ray's
    # metrics agent misses some 1 s scrapes): the gauge is in every one of them, but a
    # gauge Ray forgot would be missing from >= 20 s of the window.
    scraped = prometheus.query(f'sum_over_time(up{{job="ray"}}[{window_s}s])')
    assert scraped, "Prometheus has no scrape results"
    scrapes = max(float(s["value"][1]) for s in scraped)
    assert scrapes >= 8, f"only {scrapes:.0f} successful scrapes in {window_s} s: too few to tell"
    assert min(float(s["value"][1]) for s in present) >= scrapes - 2
