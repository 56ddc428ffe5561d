"""Every PromQL expression the dashboards and alert rules use, ready to run against Prometheus.

Used by ``python -m serving.observability.prometheus check-queries`` and the
integration test that proves every panel and rule returns data from a real stack.
Grafana variables are substituted; alert conditions are rewritten with ``bool`` so
that an alert that is not firing still returns its (0/1) series, and ``absent(x)``
becomes ``count(x)`` (data exactly when the metric it watches exists): "returns
data" then means "every metric it reads exists", not "the alert fires".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"

_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)")
_ABSENT = re.compile(r"\babsent\s*\(")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$", re.S)


@dataclass(frozen=True)
class Expression:
    """One expression and where it comes from (``file: panel/rule``)."""

    source: str
    expr: str
    kind: str  # panel | variable | record | alert

    def runnable(self, variables: Mapping[str, str]) -> str:
        """The query to send: variables substituted, alert comparisons made ``bool``.

        In an alert, ``absent(x)`` runs as ``count(x)`` (it must find the metric to be
        useful); a ``label_values(selector, label)`` variable runs as ``selector``.
        """
        expr = substitute(self.expr, variables)
        if self.kind == "variable":
            match = _LABEL_VALUES.match(expr)
            return match.group("selector") if match else expr
        if self.kind == "alert":
            return as_bool(_ABSENT.sub("count(", expr))
        return expr


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana's ``$name`` / ``${name}`` variables (longest names first)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def as_bool(expr: str) -> str:
    """``expr`` with every comparison operator outside selectors and strings made ``bool``."""
    out: list[str] = []
    i, depth = 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'`":
            end = expr.index(ch, i + 1)
            while expr[end - 1] == "\\" and ch != "`":
                end = expr.index(ch, end + 1)
            out.append(expr[i : end + 1])
            i = end + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            match = _COMPARISON.match(expr, i)
            if match:
                op = match.group(1)
                rest = expr[match.end() :]
                out.append(op if rest.lstrip().startswith("bool") else f"{op} bool")
                i = match.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def rule_expressions(rules_dir: Path = RULES_DIR) -> Iterator[Expression]:
    """The ``expr`` of every recording and alerting rule in ``rules_dir``."""
    for path in sorted(rules_dir.glob("*.y*ml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule["record"]
                kind = "alert" if "alert" in rule else "record"
                yield Expression(f"{path.name}: {name}", rule["expr"].strip(), kind)


def dashboard_expressions(dashboards_dir: Path = DASHBOARDS_DIR) -> Iterator[Expression]:
    """The ``expr`` of every panel target and query variable of every dashboard."""
    for path in sorted(dashboards_dir.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                yield Expression(f"{path.name}: ${var['name']}", query, "variable")
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield Expression(f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"], "panel")


def all_expressions() -> list[Expression]:
    """Every expression of the committed rules and dashboards."""
    return [*rule_expressions(), *dashboard_expressions()]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (``ray_...`` and recorded ``a:b:c`` series)."""
    names = set(re.findall(r"\b(ray_[a-zA-Z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b", _strip_strings(expr)))
    return {n for n in names if not n.endswith("_")}


def _strip_strings(expr: str) -> str:
    return re.sub(r'"[^"]*"', '""', expr)


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))
