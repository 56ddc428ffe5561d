"""Rendered manifests of k8s/ (real kustomize), shared by the Kubernetes validation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serving.tools.k8s_validate import configured_crd_dir, crds_unavailable, kustomize_targets, render
from serving.tools.render_serve_config import REPO

OVERLAYS = ("cpu-dev", "gpu-prod")
TARGETS = ("base", *OVERLAYS)


def target_dir(name: str) -> Path:
    """The kustomization folder of ``base`` or an overlay."""
    return REPO / "k8s" / "base" if name == "base" else REPO / "k8s" / "overlays" / name


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Documents of the base and every overlay, rendered once per session."""
    assert {p.name for p in kustomize_targets()} >= {"base", *OVERLAYS}
    return {name: render(target_dir(name)) for name in TARGETS}


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    """The CRD folder ``$LLM_SERVING_CRDS_DIR`` names; skips the test (saying how to get one) without it."""
    reason = crds_unavailable()
    if reason:
        pytest.skip(f"custom-resource schema test: {reason}")
    path = configured_crd_dir()
    assert path is not None
    return path
