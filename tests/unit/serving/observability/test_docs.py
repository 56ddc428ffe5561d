"""docs/metrics.md stays in sync with metrics.py, the dashboards and the rules."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from serving.observability.expressions import REPO_ROOT, all_expressions, metric_names
from serving.observability.metrics import METRICS

DOC = (REPO_ROOT / "docs" / "metrics.md").read_text()
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<kind>\w+) \| (?P<labels>[^|]*) \| (?P<meaning>[^|]*) \| (?P<used>[^|]*) \|$", re.M)
ROWS = {m["name"]: m for m in ROW.finditer(DOC)}


def _base(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


def _users() -> dict[str, set[str]]:
    """Metric -> the panel titles, variables and rule names whose expressions read it."""
    users: dict[str, set[str]] = defaultdict(set)
    for expression in all_expressions():
        user = expression.source.split(": ", 1)[1].split(" [")[0]
        for name in metric_names(expression.expr):
            users[_base(name)].add(user)
    return users


def test_every_declared_metric_is_documented_with_its_type_and_labels() -> None:
    for spec in METRICS:
        row = ROWS.get(spec.exported)
        assert row is not None, f"{spec.exported} missing from docs/metrics.md"
        assert row["kind"] == spec.kind, spec.exported
        assert {label.strip() for label in row["labels"].split(",")} == set(spec.labels), spec.exported
        assert row["meaning"].strip()


def test_every_documented_serving_metric_is_declared() -> None:
    declared = {spec.exported for spec in METRICS}
    documented = {name for name in ROWS if name.startswith("ray_serving_")}
    assert documented == declared


def test_every_metric_a_dashboard_or_rule_reads_is_documented_with_its_users() -> None:
    for metric, users in _users().items():
        assert metric in ROWS, f"{metric} is used by {sorted(users)} but not documented"
        used = ROWS[metric]["used"]
        for user in users:
            assert user in used, f"docs/metrics.md: {metric} should name '{user}' under Used by"


def test_metrics_nothing_reads_say_so() -> None:
    users = _users()
    for name, row in ROWS.items():
        if name not in users:
            assert row["used"].strip().startswith("none"), f"{name}: nothing reads it, but the doc says {row['used']!r}"


def test_every_recording_rule_is_documented() -> None:
    for expression in all_expressions():
        if expression.kind == "record":
            name = expression.source.split(": ", 1)[1]
            assert ROWS.get(name) is not None and ROWS[name]["kind"] == "recorded", name


@pytest.mark.parametrize(
    ("title", "spec_name"),
    [
        ("time to first token", "serving_time_to_first_token_seconds"),
        ("inter-token latency", "serving_inter_token_latency_seconds"),
        ("request duration", "serving_request_duration_seconds"),
        ("queue wait", "serving_queue_wait_seconds"),
    ],
)
def test_documented_buckets_are_the_declared_ones(title: str, spec_name: str) -> None:
    (spec,) = [s for s in METRICS if s.name == spec_name]
    match = re.search(rf"^\| {re.escape(title)} \| ([0-9. ]+) \|$", DOC, re.M)
    assert match, title
    assert [float(b) for b in match.group(1).split()] == list(spec.buckets)
