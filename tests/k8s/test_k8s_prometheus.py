"""The alert rules: valid for promtool, and the PrometheusRule carries exactly the rule files."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from serving.tools import render_serve_config as gen
from serving.tools.k8s_validate import promtool_problems
from tests.k8s.conftest import TARGETS
from tests.k8s.manifests import one

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus")


def test_rule_files_pass_promtool():
    files = gen.rule_files()
    assert gen.RULES_DIR / "serving-alerts.yaml" in files
    command = [PROMTOOL, "check", "rules", *map(str, files)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=gen.REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_rule_is_the_rules_file(rendered, target):
    rule = one(rendered[target], "PrometheusRule")
    groups = [g for path in gen.rule_files() for g in yaml.safe_load((gen.REPO / path).read_text())["groups"]]
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert promtool_problems(rule["spec"]["groups"]) == []


def test_promtool_rejects_a_broken_rule():
    groups = [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]", "for": "1m"}]}]
    assert promtool_problems(groups)
    groups = [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]) > 0", "for": "1m"}]}]
    assert promtool_problems(groups) == []


@pytest.mark.parametrize("target", TARGETS)
def test_monitors_are_picked_by_the_same_prometheus(rendered, target):
    """PodMonitor and PrometheusRule carry the label kube-prometheus-stack selects by."""
    monitor = one(rendered[target], "PodMonitor")
    rule = one(rendered[target], "PrometheusRule")
    assert monitor["metadata"]["labels"]["release"] == rule["metadata"]["labels"]["release"]
