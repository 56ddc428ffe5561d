"""Extracting and preparing the dashboards' and rules' PromQL for a live check."""

from __future__ import annotations

import pytest

from serving.observability.expressions import (
    Expression,
    all_expressions,
    as_bool,
    metric_names,
    rule_expressions,
    substitute,
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("a > 1", "a > bool 1"),
        ("a > bool 1", "a > bool 1"),
        ('x{code!="5.."} >= 0.5 and y < z', 'x{code!="5.."} >= bool 0.5 and y < bool z'),
        ('up{job=~".*ray.*"} == 0', 'up{job=~".*ray.*"} == bool 0'),
        ('a{l="x > 1"} != 2', 'a{l="x > 1"} != bool 2'),
        ("rate(a[5m]) / rate(b[5m])", "rate(a[5m]) / rate(b[5m])"),
    ],
)
def test_as_bool_rewrites_comparisons_outside_selectors_and_strings(expr: str, expected: str) -> None:
    assert as_bool(expr) == expected


def test_substitute_grafana_variables_longest_first() -> None:
    expr = 'rate(x{model=~"$model", app=~"${application}"}[$__rate_interval]) + increase(y[$__range])'
    out = substitute(expr, {"model": "m", "application": "llm", "__rate_interval": "1m", "__range": "5m"})
    assert out == 'rate(x{model=~"m", app=~"llm"}[1m]) + increase(y[5m])'


def test_alerts_run_as_bool_and_absent_runs_as_count() -> None:
    alert = Expression("f: A", 'absent(m) and on () sum(rate(r{outcome="ok"}[10m])) > 0', "alert")
    assert alert.runnable({}) == 'count(m) and on () sum(rate(r{outcome="ok"}[10m])) > bool 0'
    panel = Expression("f: P", "a > 1", "panel")
    assert panel.runnable({}) == "a > 1"
    variable = Expression("f: $v", 'label_values(m{model=~"$model"}, application)', "variable")
    assert variable.runnable({"model": "x"}) == 'm{model=~"x"}'


def test_metric_names_ignore_label_values() -> None:
    assert metric_names('sum(rate(ray_a_total{x="ray_fake"}[5m])) / model:b:rate5m') == {"ray_a_total", "model:b:rate5m"}


def test_every_rule_and_panel_is_extracted() -> None:
    expressions = all_expressions()
    kinds = {e.kind for e in expressions}
    assert kinds == {"record", "alert", "panel", "variable"}
    assert sum(e.kind == "alert" for e in expressions) == 13
    assert sum(e.kind == "record" for e in expressions) == 8
    assert len({e.source for e in expressions}) == len(expressions)
    assert all(e.expr.strip() for e in rule_expressions())
