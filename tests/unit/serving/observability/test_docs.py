"""docs/metrics.md stays in sync with the metrics catalog, the dashboards and the rules."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from serving.observability.expressions import REPO_ROOT, all_expressions, metric_names
from serving.observability.catalog import CATALOG, VARIANTS, MetricSpec

DOC = (REPO_ROOT / "docs" / "metrics.md").read_text()
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<kind>\w+) \| (?P<labels>[^|]*) \| (?P<meaning>[^|]*) \| (?P<used>[^|]*) \|$", re.M)
ROWS = {m["name"]: m for m in ROW.finditer(DOC)}


def _labels(row: re.Match) -> tuple[set[str], set[str]]:
    """(labels, optional labels) of a row: ``a, b [, c]`` -> ({a, b}, {c})."""
    text, _, optional = row["labels"].partition("[")

    def split(part: str) -> set[str]:
        return {label.strip() for label in part.strip(" ]").split(",") if label.strip()}

    return split(text), split(optional)


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


def test_every_catalog_metric_is_documented_with_its_type_and_labels() -> None:
    for spec in CATALOG:
        row = ROWS.get(spec.exported)
        assert row is not None, f"{spec.exported} missing from docs/metrics.md"
        assert row["kind"] == spec.kind, spec.exported
        labels, optional = _labels(row)
        assert labels == set(spec.labels), spec.exported
        extra = {label for v in VARIANTS if v.name == spec.name for label in v.labels if label not in spec.labels}
        assert optional == extra, f"{spec.exported}: optional labels [{optional}] vs the catalog's variants {extra}"
        assert row["meaning"].strip()


def test_the_feature_metrics_are_documented_too() -> None:
    for prefix in ("gateway", "moderation", "feedback", "embeddings"):
        specs = [spec for spec in CATALOG if spec.name.startswith(f"serving_{prefix}_")]
        assert specs, prefix
        assert all(spec.exported in ROWS for spec in specs), prefix


def test_every_documented_serving_metric_is_in_the_catalog() -> None:
    declared = {spec.exported for spec in CATALOG}
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


@pytest.mark.parametrize("spec", [s for s in CATALOG if s.kind == "histogram"], ids=lambda s: s.name)
def test_documented_buckets_are_the_declared_ones(spec: MetricSpec) -> None:
    match = re.search(rf"^\| [^|`]+ \| `{re.escape(spec.exported)}` \| ([0-9. ]+) \|$", DOC, re.M)
    assert match, f"no bucket row for {spec.exported}"
    assert [float(b) for b in match.group(1).split()] == [float(b) for b in spec.buckets]
