"""One source of truth: the RayService's Serve config is generated from deploy/serve/serve_config.yaml.

The generator's --check fails on drift; the embedded serveConfigV2 is exactly the
generated one; it is the local Serve config with only the declared k8s patches applied.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
import yaml

from serving.tools import render_serve_config as gen
from serving.tools.serve_schema import serve_config_problems
from tests.k8s.conftest import OVERLAYS, TARGETS, target_dir
from tests.k8s.manifests import one, serve_config, settings_of

SOURCES = ("deploy/serve/serve_config.yaml", "deploy/prometheus/rules", "k8s", "serving/tools")


def copy_repo(tmp_path: Path) -> Path:
    """The generator's inputs and outputs in a scratch repo."""
    for rel in SOURCES:
        src = gen.REPO / rel
        dst = tmp_path / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    return tmp_path


def test_generated_files_are_up_to_date():
    assert gen.drift() == [], "run: python -m serving.tools.render_serve_config --write"
    assert gen.main(["--check"]) == 0


def test_check_fails_when_the_source_changes(tmp_path, capsys):
    repo = copy_repo(tmp_path)
    source = repo / gen.SERVE_CONFIG
    source.write_text(source.read_text().replace("max_num_seqs: 64", "max_num_seqs: 48"))
    stale = gen.drift(repo)
    assert gen.BASE / "generated" / "serve_config.yaml" in stale
    assert gen.OVERLAYS / "cpu-dev" / "generated" / "rayservice-patch.yaml" in stale
    assert gen.main(["--check", "--repo", str(repo)]) == 1
    assert "stale: k8s/base/generated/serve_config.yaml" in capsys.readouterr().err
    assert gen.main(["--write", "--repo", str(repo)]) == 0
    assert gen.drift(repo) == []
    assert "max_num_seqs: 48" in (repo / "k8s/overlays/cpu-dev/generated/serve_config.yaml").read_text()


def test_check_fails_when_a_generated_file_is_edited(tmp_path):
    repo = copy_repo(tmp_path)
    patch = repo / "k8s/overlays/gpu-prod/generated/rayservice-patch.yaml"
    patch.write_text(patch.read_text().replace("value: 8\n", "value: 9\n"))
    assert gen.drift(repo) == [Path("k8s/overlays/gpu-prod/generated/rayservice-patch.yaml")]


def test_check_fails_when_the_alert_rules_change(tmp_path):
    repo = copy_repo(tmp_path)
    rules = repo / gen.RULES_DIR / "serving-alerts.yaml"
    data = yaml.safe_load(rules.read_text())
    data["groups"][0]["name"] += "-renamed"
    rules.write_text(yaml.safe_dump(data))
    assert gen.drift(repo) == [gen.BASE / "generated" / "prometheusrule.yaml"]


@pytest.mark.parametrize("target", TARGETS)
def test_embedded_serve_config_is_the_generated_one(rendered, target):
    embedded = one(rendered[target], "RayService")["spec"]["serveConfigV2"]
    generated = yaml.safe_load((target_dir(target) / "generated" / "serve_config.yaml").read_text())
    assert yaml.safe_load(embedded) == generated


@pytest.mark.parametrize("target", TARGETS)
def test_embedded_serve_config_is_the_local_one_plus_declared_patches(rendered, target):
    local = yaml.safe_load((gen.REPO / gen.SERVE_CONFIG).read_text())
    args = local["applications"][0]["args"]
    patches = [gen.BASE / gen.SETTINGS_PATCH]
    if target != "base":
        patches.append(target_dir(target) / gen.SETTINGS_PATCH)
    for patch in patches:
        args = gen.deep_merge(args, yaml.safe_load((gen.REPO / patch).read_text()))
    embedded = serve_config(rendered[target])
    app, local_app = embedded["applications"][0], local["applications"][0]
    assert app["args"] == args
    assert {k: v for k, v in app.items() if k != "args"} == {k: v for k, v in local_app.items() if k != "args"}
    assert embedded["proxy_location"] == local["proxy_location"]
    # The proxy deadline is derived from each target's settings (gpu-prod generates for
    # longer than the local config), like host and port; nothing else in http_options changes.
    assert embedded["http_options"] == {
        "host": "0.0.0.0",
        "port": local["http_options"]["port"],
        "request_timeout_s": gen.validate_args(args).proxy_request_timeout_s(),
    }


@pytest.mark.parametrize("target", TARGETS)
def test_proxy_deadline_outlasts_the_apps_and_the_queue_is_bounded(rendered, target):
    embedded = serve_config(rendered[target])
    settings = settings_of(rendered[target])
    assert embedded["http_options"]["request_timeout_s"] > settings.http.request_timeout_s
    capacity = settings.model.engine.max_num_seqs + settings.gateway.admission.max_waiting
    assert settings.model.deployment.max_queued_requests >= capacity


def test_a_source_proxy_deadline_shorter_than_the_apps_is_refused(tmp_path, capsys):
    repo = copy_repo(tmp_path)
    source = repo / gen.SERVE_CONFIG
    config = yaml.safe_load(source.read_text())
    config["http_options"]["request_timeout_s"] = 60
    source.write_text(yaml.safe_dump(config, sort_keys=False))
    assert gen.main(["--check", "--repo", str(repo)]) != 0
    assert "http_options.request_timeout_s" in capsys.readouterr().err


@pytest.mark.parametrize("target", TARGETS)
def test_embedded_serve_config_passes_ray_schema_strictly(rendered, target):
    assert serve_config_problems(one(rendered[target], "RayService")["spec"]["serveConfigV2"]) == []


def test_local_serve_config_passes_ray_schema_strictly():
    assert serve_config_problems((gen.REPO / gen.SERVE_CONFIG).read_text()) == []


@pytest.mark.parametrize("target", OVERLAYS)
def test_no_settings_come_from_the_environment(rendered, target):
    """Settings live in serveConfigV2 only: an env var SERVING_* would override it unseen."""
    for doc in rendered[target]:
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc.get("data", {}) if k.startswith("SERVING_")]
    rayservice = one(rendered[target], "RayService")
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for spec in (group["template"]["spec"] for group in groups):
        for container in spec["containers"]:
            assert not [e for e in container.get("env", []) if e["name"].startswith("SERVING_")]


@pytest.mark.parametrize("target", OVERLAYS)
def test_auth_is_on_with_the_mounted_keys_file(rendered, target):
    settings = settings_of(rendered[target])
    assert settings.gateway.auth.enabled
    assert str(settings.gateway.auth.keys_file) == "/etc/llm-serving/keys/keys.yaml"


def test_settings_errors_are_reported_with_their_path(tmp_path, capsys):
    repo = copy_repo(tmp_path)
    patch = repo / "k8s/overlays/cpu-dev/serve-settings.yaml"
    patch.write_text(patch.read_text() + "http:\n  request_timout_s: 10\n")
    assert gen.main(["--check", "--repo", str(repo)]) == 2
    assert "http.request_timout_s" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"model": {"deployment": {"graceful_shutdown_timeout_s": 30}}}, "would cut streams"),
        ({"gateway": {"drain": {"graceful_shutdown_timeout_s": 30}}}, "would cut streams"),
        ({"http": {"topology": "split"}}, "topology colocated"),
        ({"model": {"deployment": {"num_cpus": 0.25}}}, "fits 4 replicas"),
    ],
)
def test_inconsistent_settings_are_refused(tmp_path, patch, message):
    repo = copy_repo(tmp_path)
    path = repo / "k8s/overlays/cpu-dev/serve-settings.yaml"
    path.write_text(yaml.safe_dump(gen.deep_merge(yaml.safe_load(path.read_text()), patch)))
    # Cross-section rules are the settings' own (a ValidationError naming both keys); the
    # rest are the generator's (RenderError).
    with pytest.raises((gen.RenderError, ValidationError), match=message):
        gen.render_all(repo)


def test_generation_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("SERVING_MODEL__ID", "from-the-environment")
    monkeypatch.setenv("SERVING_HTTP__PORT", "9999")
    assert gen.drift() == []


@pytest.mark.parametrize(("target", "precision"), [("base", "float32"), ("cpu-dev", "float32"), ("gpu-prod", "bfloat16")])
def test_each_target_runs_the_precision_of_its_device(rendered, target, precision):
    """CPU pods serve float32 (exact reference agreement); GPU pods bfloat16, vLLM's usual choice."""
    engine = settings_of(rendered[target]).model.engine
    assert engine.resolved_dtype == precision
    assert engine.device == ("cuda" if precision == "bfloat16" else "cpu")


@pytest.mark.parametrize(("target", "temperature"), [("base", 0.0), ("cpu-dev", 0.0), ("gpu-prod", None)])
def test_only_the_small_default_model_is_greedy_by_default(rendered, target, temperature):
    """SmolLM2's greedy default (measured best) must not leak into another model's overlay."""
    assert settings_of(rendered[target]).model.generation.temperature == temperature
