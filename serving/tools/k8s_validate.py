"""Render the kustomizations under k8s/ and validate every document strictly, offline.

* Render with real kustomize (``kubectl kustomize``, see :mod:`serving.tools.kubectl`).
* Built-in kinds: ``kubernetes-validate`` strict schemas (unknown fields fail).
* Custom resources (RayService, PodMonitor, ServiceMonitor, PrometheusRule, ScaledObject):
  the real CRD schemas in ``../shared/k8s-crds``, every object closed with
  ``additionalProperties: false`` unless it preserves unknown fields, and ``metadata``
  checked as a Kubernetes ObjectMeta.
* A document whose kind has no schema fails.
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
import shutil
import subprocess
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
CRD_DIR = REPO.parent / "shared" / "k8s-crds"
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


@functools.lru_cache(maxsize=None)
def crd_validators(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """Validators by (apiVersion, kind) for every served version of every CRD in ``crd_dir``."""
    if not crd_dir.is_dir():
        raise FileNotFoundError(f"CRD folder {crd_dir} not found (expected ../shared/k8s-crds)")
    registry = Registry().with_resource(DEFINITIONS_URI, _definitions())
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_Loader)
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


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(document)"


def schema_problems(doc: Mapping[str, Any], crd_dir: Path = CRD_DIR) -> list[Problem]:
    """Schema violations of one document; a kind without a schema is a problem too."""
    name = _name(doc)
    if not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
        return [Problem(name, "apiVersion and kind must be strings")]
    validator = crd_validators(crd_dir).get((doc["apiVersion"], doc["kind"]))
    if validator is not None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [Problem(name, f"{_path(e)}: {e.message}") for e in errors]
    try:
        kubernetes_validate.validate(dict(doc), KUBERNETES_VERSION, strict=True)
    except kv_utils.SchemaNotFoundError:
        return [Problem(name, f"no schema for {doc['apiVersion']} {doc['kind']} (not built in, no CRD)")]
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


def document_problems(docs: Iterable[Mapping[str, Any]], crd_dir: Path = CRD_DIR) -> list[Problem]:
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
    directories: Iterable[Path], crd_dir: Path = CRD_DIR
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
    parser.add_argument("--crd-dir", type=Path, default=CRD_DIR, help=f"CRD YAML files (default: {CRD_DIR})")
    args = parser.parse_args(argv)
    failed = False
    for directory, problems in validate_targets(args.directories or kustomize_targets(), args.crd_dir):
        print(f"{'FAIL' if problems else 'ok  '} {directory}")
        for problem in problems:
            print(f"     {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

