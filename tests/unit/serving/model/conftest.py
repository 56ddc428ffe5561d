"""Model folders built once per test session into a temporary cache (never the user's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.model.prepare import prepare_default_model
from serving.model.tiny import make_tiny_model


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir private to this session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def prepared_dir(model_cache: Path) -> Path:
    """The packaged default model converted for real (~20 s, once per session)."""
    return prepare_default_model(model_cache)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model built for real (a few seconds, once per session)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def make_fake_model_folder(folder: Path) -> None:
    """Stand-in for a conversion: a minimal folder the build-once logic can move around."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"weights")
