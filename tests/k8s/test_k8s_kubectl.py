"""The offline kubectl (with kustomize) that CI renders the manifests with."""

from __future__ import annotations

import os
import subprocess

import pytest

from serving.tools.kubectl import main, tool_path


def test_kubectl_is_extracted_once_and_runs(tmp_path):
    path = tool_path("kubectl", cache_dir=tmp_path)
    assert path == tmp_path / "kubectl" and os.access(path, os.X_OK)
    mtime = path.stat().st_mtime_ns
    assert tool_path("kubectl", cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not extracted again
    out = subprocess.run([str(path), "version", "--client"], capture_output=True, text=True, check=True).stdout
    assert "Client Version: v1.35" in out and "Kustomize Version: v5" in out


def test_helm_is_available_too(tmp_path):
    out = subprocess.run([str(tool_path("helm", cache_dir=tmp_path)), "version", "--short"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.startswith("v")


def test_unknown_tool_is_refused():
    with pytest.raises(ValueError, match="unknown tool"):
        tool_path("docker")  # type: ignore[arg-type]


def test_cli_prints_the_path(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.strip().endswith("/kubectl")
