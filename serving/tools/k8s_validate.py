"""Render the kustomizations under k8s/ and validate every document strictly, offline.

* Render with real kustomize (``kubectl kustomize``, see :mod:`serving.tools.kubectl`).
* Built-in kinds: ``kubernetes-validate`` strict schemas (unknown fields fail).
* Custom resources (RayService, PodMonitor, PrometheusRule; any other CRD in the folder
  too): the real CRD schemas in the folder ``$LLM_SERVING_CRDS_DIR`` names (upstream
  data, never in this repo; see k8s/README.md), every object closed with
  ``additionalProperties: false`` unless it preserves unknown fields, and ``metadata``
  checked as a Kubernetes ObjectMeta.
* A document whose kind has no schema fails, custom resources without their CRD too.
* ``serveConfigV2``: Ray's ServeDeploySchema, no unknown keys, args = our settings tree
  (:mod:`serving.tools.serve_schema`).
* PrometheusRule: ``promtool check rules`` on its groups.

    python -m serving.tools.k8s_validate                     # base + every overlay
    python -m serving.tools.k8s_validate k8s/overlays/gpu-prod
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from serving.tools.kubectl import tool_path
from serving.tools.render_serve_config import REPO
from serving.tools.serve_schema import serve_config_problems

KUBERNETES_VERSION = "1.35"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are ~20k lines each
# The one setting for the CRD folder, read only by configured_crd_dir(). Not SERVING_*:
# that prefix is the app's settings tree (serving.config.settings, extra="forbid"), and
# where a validator finds upstream CRD files is no setting of the served app.
CRDS_DIR_ENV = "LLM_SERVING_CRDS_DIR"
# The custom resources k8s/ uses, with the file name upstream gives each CRD.
CUSTOM_RESOURCES = {
    ("ray.io/v1", "RayService"): "ray.io_rayservices.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
CRDS_HOWTO = (
    f"set {CRDS_DIR_ENV} to a folder holding {', '.join(CUSTOM_RESOURCES.values())}; get them from a "
    "cluster with KubeRay and the Prometheus Operator (`kubectl get crd rayservices.ray.io -o yaml > "
    "DIR/ray.io_rayservices.yaml`, likewise podmonitors.monitoring.coreos.com and "
    "prometheusrules.monitoring.coreos.com) or from releases: KubeRay ray-operator/config/crd/bases/, "
    "prometheus-operator example/prometheus-operator-crd/, KEDA keda-2.x-crds.yaml (see k8s/README.md)"
)
DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"
OBJECT_META_REF = f"{DEFINITIONS_URI}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class RenderFailed(RuntimeError):
    """kustomize could not build a kustomization."""


@dataclass(frozen=True)
class Problem:
    """One reason a rendered document is invalid."""

    document: str  # kind/name
    message: str

    def __str__(self) -> str:
        return f"{self.document}: {self.message}"


def kustomize_targets(repo: Path = REPO) -> list[Path]:
    """The base and every overlay kustomization under k8s/."""
    overlays = sorted(p.parent for p in (repo / "k8s" / "overlays").glob("*/kustomization.yaml"))
    return [repo / "k8s" / "base", *overlays]


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl kustomize directory`` builds (raises RenderFailed)."""
    result = subprocess.run(
        [str(tool_path("kubectl")), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RenderFailed(f"kubectl kustomize {directory}: {result.stderr.strip()}")
    return [doc for doc in yaml.load_all(result.stdout, Loader=_Loader) if doc]


def _close(schema: Any) -> Any:
    """A copy of an OpenAPI schema where every object with properties rejects other keys."""
    if isinstance(schema, list):
        return [_close(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    literal = ("enum", "default", "example")  # data, not schemas
    closed = {key: value if key in literal else _close(value) for key, value in schema.items()}
    if "properties" in closed and "additionalProperties" not in closed and not closed.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        closed["additionalProperties"] = False
    if closed.get("x-kubernetes-int-or-string") and "type" not in closed and "anyOf" not in closed:
        closed["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return closed


@functools.lru_cache(maxsize=None)
def _definitions() -> Resource:
    version = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= KUBERNETES_VERSION][-1]
    path = f"kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    contents = kv_utils.schema_contents(path, version)
    return Resource.from_contents(contents)


def configured_crd_dir() -> Path | None:
    """The CRD folder ``$LLM_SERVING_CRDS_DIR`` names (None when unset): the one read of it."""
    value = os.environ.get(CRDS_DIR_ENV, "").strip()
    return Path(value) if value else None


def _crds_in(path: Path) -> Iterator[dict[str, Any]]:
    """The CRDs of one file: one per file upstream, several in KEDA's bundle or a kubectl List."""
    for doc in yaml.load_all(path.read_text(), Loader=_Loader):
        items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        yield from (d for d in items if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition")


@functools.lru_cache(maxsize=None)
def crd_validators(crd_dir: Path) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """Validators by (apiVersion, kind) for every served version of every CRD in ``crd_dir``."""
    if not crd_dir.is_dir():
        raise FileNotFoundError(f"CRD folder {crd_dir} not found ({CRDS_DIR_ENV}; {CRDS_HOWTO})")
    registry = Registry().with_resource(DEFINITIONS_URI, _definitions())
    validators = {}
    for crd in (crd for path in sorted(crd_dir.glob("*.yaml")) for crd in _crds_in(path)):
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", False):
                continue
            schema = _close(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            schema["properties"]["metadata"] = {"$ref": OBJECT_META_REF}
            schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
    return validators


def _resolve(crd_dir: Path | None) -> Path | None:
    return configured_crd_dir() if crd_dir is None else crd_dir


def crds_unavailable(crd_dir: Path | None = None) -> str | None:
    """Why the custom resources of k8s/ cannot be validated (None: every CRD they need is there)."""
    crd_dir = _resolve(crd_dir)
    if crd_dir is None:
        return f"{CRDS_DIR_ENV} is not set: custom resources cannot be validated; {CRDS_HOWTO}"
    if not crd_dir.is_dir():
        return f"{CRDS_DIR_ENV}={crd_dir} is not a folder; {CRDS_HOWTO}"
    missing = [f"{kind} {api}" for (api, kind) in CUSTOM_RESOURCES if (api, kind) not in crd_validators(crd_dir)]
    if missing:
        return f"{CRDS_DIR_ENV}={crd_dir} has no CRD for {', '.join(missing)}; {CRDS_HOWTO}"
    return None


def is_custom_resource(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` is one of the custom resources k8s/ uses (validated by its CRD)."""
    return (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_RESOURCES


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(document)"


def schema_problems(doc: Mapping[str, Any], crd_dir: Path | None = None) -> list[Problem]:
    """Schema violations of one document; a kind without a schema is a problem too.

    ``crd_dir`` None: the folder ``$LLM_SERVING_CRDS_DIR`` names; unset, no CRD is known
    and every custom resource fails with "no schema".
    """
    name = _name(doc)
    if not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
        return [Problem(name, "apiVersion and kind must be strings")]
    crd_dir = _resolve(crd_dir)
    validators = crd_validators(crd_dir) if crd_dir is not None else {}
    validator = validators.get((doc["apiVersion"], doc["kind"]))
    if validator is not None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [Problem(name, f"{_path(e)}: {e.message}") for e in errors]
    try:
        kubernetes_validate.validate(dict(doc), KUBERNETES_VERSION, strict=True)
    except kv_utils.SchemaNotFoundError:
        source = f"in {crd_dir}" if crd_dir is not None else f"folder: {CRDS_DIR_ENV} is not set"
        return [Problem(name, f"no schema for {doc['apiVersion']} {doc['kind']} (not built in, no CRD {source})")]
    except kv_utils.ValidationError as exc:
        return [Problem(name, f"{_path(exc)}: {exc.message}")]
    return []


def promtool_problems(groups: Any) -> list[str]:
    """``promtool check rules`` on rule groups (empty list: valid)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return ["promtool not found (Debian package `prometheus`)"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump({"groups": groups}, handle)
        handle.flush()
        result = subprocess.run(
            [promtool, "check", "rules", handle.name], capture_output=True, text=True, timeout=60
        )
    if result.returncode == 0:
        return []
    return [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def content_problems(doc: Mapping[str, Any]) -> list[Problem]:
    """Checks of embedded content: the Serve config of a RayService, the rules of a PrometheusRule."""
    name = _name(doc)
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    if doc.get("kind") == "RayService":
        text = spec.get("serveConfigV2")
        if not isinstance(text, str) or not text.strip():
            return [Problem(name, "spec.serveConfigV2 is empty")]
        return [Problem(name, f"serveConfigV2: {p}") for p in serve_config_problems(text)]
    if doc.get("kind") == "PrometheusRule":
        return [Problem(name, f"promtool: {p}") for p in promtool_problems(spec.get("groups"))]
    return []


def document_problems(docs: Iterable[Mapping[str, Any]], crd_dir: Path | None = None) -> list[Problem]:
    """Every problem of a set of rendered documents."""
    problems: list[Problem] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            problems.append(Problem("?", f"not a mapping: {type(doc).__name__}"))
            continue
        found = schema_problems(doc, crd_dir)
        problems.extend(found)
        if not found:
            problems.extend(content_problems(doc))
    return problems


def validate_targets(
    directories: Iterable[Path], crd_dir: Path | None = None
) -> Iterator[tuple[Path, list[Problem]]]:
    """Render and validate each kustomization; a render failure is its one problem."""
    for directory in directories:
        try:
            docs = render(directory)
        except RenderFailed as exc:
            yield directory, [Problem("kustomization", str(exc))]
            continue
        yield directory, document_problems(docs, crd_dir)


def main(argv: list[str] | None = None) -> int:
    """Exit 1 when any kustomization fails to render or any document is invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.tools.k8s_validate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("directories", nargs="*", type=Path, help="kustomizations (default: base + overlays)")
    parser.add_argument("--crd-dir", type=Path, help=f"folder of CRD YAML files (default: ${CRDS_DIR_ENV})")
    args = parser.parse_args(argv)
    reason = crds_unavailable(args.crd_dir)
    if reason:
        print(f"note: {reason}", file=sys.stderr)  # those custom resources fail below: no schema
    failed = False
    for directory, problems in validate_targets(args.directories or kustomize_targets(), args.crd_dir):
        print(f"{'FAIL' if problems else 'ok  '} {directory}")
        for problem in problems:
            print(f"     {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

