"""The Grafana dashboards: the panel lists of ``panels.py`` rendered to provisioning JSON.

``python -m serving.observability.dashboards`` writes ``deploy/grafana/dashboards/*.json``;
a test fails when the committed JSON differs from what this module renders, so edit
the panels in ``panels.py``. Every dashboard is templated by ``$datasource`` (any Prometheus),
``$model`` and ``$application`` (the Serve application that serves it). Every
expression is executed against a real Prometheus scraping a real stack in
``tests/integration/observability``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.observability.panels import DATASOURCE, OPERATOR_VIEW, SERVICE_OVERVIEW, Panel, Row

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"

DASHBOARDS: dict[str, tuple[str, str, tuple[Row, ...]]] = {
    "serving-overview.json": ("serving-overview", "LLM serving: service overview", SERVICE_OVERVIEW),
    "serving-operator.json": ("serving-operator", "LLM serving: operator view", OPERATOR_VIEW),
}


def _variables() -> list[dict]:
    def query_var(name: str, label: str, query: str) -> dict:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": query, "refId": f"{name}-variable"},
            "definition": query,
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }

    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        query_var("model", "Model", "label_values(ray_serving_model_info, model)"),
        query_var("application", "Serve application", 'label_values(ray_serving_model_info{model=~"$model"}, application)'),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    targets = [
        {
            "datasource": DATASOURCE,
            "expr": q.expr,
            "legendFormat": q.legend,
            "refId": chr(ord("A") + i),
            "instant": q.instant,
            "range": not q.instant,
            **({"format": "table"} if panel.kind == "table" else {}),
        }
        for i, q in enumerate(panel.queries)
    ]
    defaults: dict = {"unit": panel.unit}
    if "max" in panel.extra:
        defaults["max"] = panel.extra["max"]
    out = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": targets,
    }
    if "transformations" in panel.extra:
        out["transformations"] = panel.extra["transformations"]
    return out


def render(uid: str, title: str, rows: tuple[Row, ...]) -> dict:
    """The Grafana dashboard JSON (provisioning-ready) for ``rows``."""
    panels: list[dict] = []
    next_id, y = 1, 0
    for row in rows:
        panels.append(
            {"id": next_id, "type": "row", "title": row.title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        )
        next_id, y, x, row_height = next_id + 1, y + 1, 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel_json(panel, next_id, x, y))
            next_id, x, row_height = next_id + 1, x + panel.width, max(row_height, panel.height)
        y += row_height
    return {
        "uid": uid,
        "title": title,
        "tags": ["llm-serving"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        name: json.dumps(render(uid, title, rows), indent=2, ensure_ascii=False) + "\n"
        for name, (uid, title, rows) in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards (default) or ``--check`` that the committed files are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is stale")
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale dashboards (run python -m serving.observability.dashboards):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
