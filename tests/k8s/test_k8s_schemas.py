"""Every kustomization renders with real kustomize and every document passes strict schemas.

Built-in kinds: kubernetes-validate --strict (Kubernetes 1.35). Custom resources: the
real CRDs in the folder $LLM_SERVING_CRDS_DIR names, closed against unknown fields; without
it the custom-resource schema tests skip (saying how to get the CRDs) and a custom resource
still fails validation. No schema: failure.
The negative cases in data/invalid/ prove each of these checks can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serving.tools.k8s_validate import (
    CRDS_DIR_ENV,
    CUSTOM_RESOURCES,
    RenderFailed,
    crds_unavailable,
    document_problems,
    is_custom_resource,
    main,
    render,
    schema_problems,
)
from serving.tools.render_serve_config import REPO
from tests.k8s.conftest import TARGETS, target_dir

DATA = Path(__file__).parent / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("target", TARGETS)
def test_renders_documents(rendered, target):
    kinds = {doc["kind"] for doc in rendered[target]}
    assert {"Namespace", "RayService", "ConfigMap", "Service", "PodDisruptionBudget", "NetworkPolicy",
            "PodMonitor", "PrometheusRule"} <= kinds  # fmt: skip


@pytest.mark.parametrize("target", TARGETS)
def test_builtin_documents_are_valid(rendered, target):
    """Every document but the custom resources (those need the CRDs: the next test)."""
    problems = document_problems(doc for doc in rendered[target] if not is_custom_resource(doc))
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.parametrize("target", TARGETS)
def test_custom_resources_are_valid(rendered, target, crd_dir):
    docs = [doc for doc in rendered[target] if is_custom_resource(doc)]
    assert {doc["kind"] for doc in docs} == {kind for _, kind in CUSTOM_RESOURCES}
    problems = document_problems(docs, crd_dir)
    assert problems == [], "\n".join(map(str, problems))


def test_custom_resource_without_crds_fails(rendered, monkeypatch, tmp_path):
    """Without CRDs a custom resource has no schema: a failure, never a silent pass."""
    monkeypatch.delenv(CRDS_DIR_ENV, raising=False)
    rayservice = next(d for d in rendered["base"] if d["kind"] == "RayService")
    unset, empty = map(str, [*schema_problems(rayservice), *schema_problems(rayservice, crd_dir=tmp_path)])
    assert "no schema for ray.io/v1 RayService" in unset and f"{CRDS_DIR_ENV} is not set" in unset
    assert "no schema for ray.io/v1 RayService" in empty and f"no CRD in {tmp_path}" in empty


def test_cli_without_crds_fails_saying_why(monkeypatch, capsys):
    monkeypatch.delenv(CRDS_DIR_ENV, raising=False)
    assert main([str(target_dir("base"))]) == 1
    out, err = capsys.readouterr()
    assert "no schema for ray.io/v1 RayService" in out and f"note: {CRDS_DIR_ENV} is not set" in err


def test_crds_setting_is_honoured(monkeypatch, tmp_path):
    """The folder comes from $LLM_SERVING_CRDS_DIR; the reason it is unusable says how to fix it."""
    monkeypatch.delenv(CRDS_DIR_ENV, raising=False)
    reason = crds_unavailable()
    assert reason and reason.startswith(f"{CRDS_DIR_ENV} is not set")
    assert "kubectl get crd rayservices.ray.io -o yaml > DIR/ray.io_rayservices.yaml" in reason
    monkeypatch.setenv(CRDS_DIR_ENV, str(tmp_path))
    assert crds_unavailable() == crds_unavailable(tmp_path)
    assert crds_unavailable().startswith(  # type: ignore[union-attr]
        f"{CRDS_DIR_ENV}={tmp_path} has no CRD for RayService ray.io/v1, PodMonitor monitoring.coreos.com/v1, "
        "PrometheusRule monitoring.coreos.com/v1; "
    )
    monkeypatch.setenv(CRDS_DIR_ENV, str(tmp_path / "nowhere"))
    assert f"{tmp_path / 'nowhere'} is not a folder" in crds_unavailable()  # type: ignore[operator]


def test_cli_validates_base_and_overlays(capsys, crd_dir):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == len(TARGETS), out


def test_yaml_style():
    """yamllint over every hand-written and generated manifest and the test data."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(
        "{extends: default, rules: {line-length: {max: 120}, document-start: disable,"
        " comments: {min-spaces-from-content: 1}, braces: {max-spaces-inside: 1},"
        " truthy: {check-keys: false}, indentation: {indent-sequences: whatever}}}"
    )
    files = [*(REPO / "k8s").rglob("*.yaml"), *DATA.rglob("*.yaml")]
    problems = [f"{path}:{p.line}: {p.message}" for path in files for p in linter.run(path.read_text(), config)]
    assert len(files) > 20 and problems == [], "\n".join(problems)


def test_missing_crds_are_an_error(tmp_path, rendered):
    rayservice = next(d for d in rendered["base"] if d["kind"] == "RayService")
    with pytest.raises(FileNotFoundError, match="CRD folder"):
        schema_problems(rayservice, crd_dir=tmp_path / "nowhere")


def test_render_error_fails():
    with pytest.raises(RenderFailed, match="replace operation does not apply|doesn't exist|not found"):
        render(DATA / "broken-overlay")
    assert main([str(DATA / "broken-overlay")]) == 1


def _expectations(path: Path) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("# expect:")]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_fails(path, request):
    expected = _expectations(path)
    assert expected, f"{path.name} must say what it expects (# expect: ...)"
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    if any(is_custom_resource(doc) for doc in docs):
        request.getfixturevalue("crd_dir")  # skips without the CRDs
    problems = [str(p) for p in document_problems(docs)]
    assert problems, f"{path.name} passed validation"
    for text in expected:
        assert any(text in p for p in problems), f"{text!r} not in {problems}"


def test_invalid_cases_cover_each_check():
    names = {p.stem for p in INVALID}
    assert {"rayservice-typo-field", "rayservice-wrong-type", "builtin-typo-field", "builtin-wrong-type",
            "unknown-kind", "serveconfig-unknown-key", "serveconfig-args-typo", "podmonitor-typo-field",
            "prometheusrule-bad-expr"} <= names  # fmt: skip


def test_valid_rayservice_becomes_invalid_with_one_typo(rendered, crd_dir):
    """The same document flips from valid to invalid: the schema is closed, not lenient."""
    import copy

    rayservice = next(d for d in rendered["cpu-dev"] if d["kind"] == "RayService")
    assert schema_problems(rayservice, crd_dir) == []
    broken = copy.deepcopy(rayservice)
    container = broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["resources"]["limit"] = container["resources"].pop("limits")
    assert any("'limit' was unexpected" in str(p) for p in schema_problems(broken, crd_dir))
