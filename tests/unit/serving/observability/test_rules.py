"""The Prometheus rules: promtool checks and unit tests, runbook links."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from serving.observability.expressions import REPO_ROOT, RULES_DIR

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yaml"))
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: apt-get install -y prometheus (make deps-system)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS_DIR)


def alerts() -> list[dict]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yaml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_accepts_the_rules_and_the_local_config() -> None:
    for path in RULES_DIR.glob("*.yaml"):
        result = promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_must_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_to_an_existing_runbook_section() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor == rule["alert"].lower() and anchor in anchors, url
        assert rule["labels"]["severity"] in {"page", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_runbook_links_between_sections_resolve() -> None:
    text = RUNBOOK.read_text()
    anchors = _anchors(text)
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, link
