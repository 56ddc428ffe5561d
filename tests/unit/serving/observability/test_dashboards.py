"""The Grafana dashboards: generated from dashboards.py, templated, well-formed."""

from __future__ import annotations

import json

import pytest

from serving.observability.dashboards import DASHBOARD_DIR, DASHBOARDS, main, rendered
from serving.observability.expressions import dashboard_expressions, metric_names


def load(name: str) -> dict:
    return json.loads((DASHBOARD_DIR / name).read_text())


def test_the_committed_dashboards_are_current(tmp_path) -> None:
    for name, text in rendered().items():
        assert (DASHBOARD_DIR / name).read_text() == text, "run: python -m serving.observability.dashboards"
    assert main(["--check"]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 1  # missing files are stale
    assert main(["--out", str(tmp_path)]) == 0 and main(["--check", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_templated_by_datasource_model_and_application(name: str) -> None:
    dashboard = load(name)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["query"]["query"] == "label_values(ray_serving_model_info, model)"
    assert "$model" in variables["application"]["query"]["query"]
    for var in ("model", "application"):
        assert variables[var]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_queries_on_the_datasource_variable_filtered_by_model(name: str) -> None:
    dashboard = load(name)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            expr = target["expr"]
            # Every series a panel reads is narrowed to the selected models/applications.
            assert any(f in expr for f in ('model=~"$model"', 'model_name=~"$model"', 'application=~"$application"')), expr


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap_and_fit_the_grid(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in load(name)["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & area, panel["title"]
        cells |= area


def test_the_overview_shows_what_the_issue_asks_for() -> None:
    names = set().union(*(metric_names(e.expr) for e in dashboard_expressions() if e.source.startswith("serving-overview")))
    assert {
        "ray_serving_requests_total",
        "ray_serving_time_to_first_token_seconds_bucket",
        "ray_serving_inter_token_latency_seconds_bucket",
        "ray_serving_request_duration_seconds_bucket",
        "ray_serving_completion_tokens_total",
        "ray_serving_requests_in_flight",
        "ray_serve_deployment_queued_queries",
        "ray_serve_deployment_replica_healthy",
        "ray_serve_autoscaling_target_replicas",
        "ray_vllm_kv_cache_usage_perc",
    } <= names
    quantiles = [e.expr for e in dashboard_expressions() if "histogram_quantile" in e.expr]
    for q in ("0.5", "0.95", "0.99"):
        assert sum(f"histogram_quantile({q}," in e for e in quantiles) >= 3
