"""Build-once folders: marker written last, atomic rename, stale or partial folders rebuilt."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from serving.model.folder import (
    MARKER_NAME,
    ModelFolderError,
    build_once,
    is_complete,
    read_marker,
    validate_model_folder,
)

FINGERPRINT = {"source": "x.gguf", "size": 7, "converter": "1"}


def _writer(calls: list[Path]):
    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "config.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights.bin").write_bytes(b"0123456789")

    return build


def test_builds_then_reuses_without_rebuilding(tmp_path: Path) -> None:
    calls: list[Path] = []
    dest = tmp_path / "m"
    assert build_once(dest, FINGERPRINT, _writer(calls)) == dest
    marker = read_marker(dest)
    assert marker is not None and marker["fingerprint"] == FINGERPRINT
    assert marker["files"] == {"config.json": 2, "sub/weights.bin": 10}
    build_once(dest, FINGERPRINT, _writer(calls))
    assert len(calls) == 1
    assert read_marker(dest) == marker
    # The build ran in a temporary sibling that no longer exists; nothing else is left.
    assert not calls[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_folder_without_marker_is_rebuilt(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "config.json").write_text("partial")
    (dest / "junk.part").write_text("left by a crash")
    calls: list[Path] = []
    build_once(dest, FINGERPRINT, _writer(calls))
    assert len(calls) == 1
    assert not (dest / "junk.part").exists()
    assert is_complete(dest, FINGERPRINT)


def test_other_fingerprint_is_rebuilt(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    calls: list[Path] = []
    build_once(dest, FINGERPRINT, _writer(calls))
    newer = {**FINGERPRINT, "converter": "2"}
    assert not is_complete(dest, newer)
    build_once(dest, newer, _writer(calls))
    assert len(calls) == 2
    assert read_marker(dest)["fingerprint"] == newer


@pytest.mark.parametrize("damage", ["truncate", "delete", "corrupt-marker"])
def test_damaged_folder_is_not_complete(tmp_path: Path, damage: str) -> None:
    dest = tmp_path / "m"
    build_once(dest, FINGERPRINT, _writer([]))
    if damage == "truncate":
        (dest / "sub" / "weights.bin").write_bytes(b"01")
    elif damage == "delete":
        (dest / "config.json").unlink()
    else:
        (dest / MARKER_NAME).write_text("{not json")
    assert not is_complete(dest, FINGERPRINT)


def test_failed_build_leaves_no_folder(tmp_path: Path) -> None:
    dest = tmp_path / "m"

    def broken(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(dest, FINGERPRINT, broken)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".m.lock"]


def test_leftovers_of_a_killed_build_are_removed(tmp_path: Path) -> None:
    leftover = tmp_path / ".m.tmp-abc123"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    build_once(tmp_path / "m", FINGERPRINT, _writer([]))
    assert not leftover.exists()


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    calls: list[Path] = []
    started = threading.Barrier(4)

    def run() -> None:
        started.wait()
        build_once(dest, FINGERPRINT, _writer(calls))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 1
    assert is_complete(dest, FINGERPRINT)


def test_built_folder_is_readable_by_others(tmp_path: Path) -> None:
    dest = build_once(tmp_path / "m", FINGERPRINT, _writer([]))
    assert dest.stat().st_mode & 0o005 == 0o005  # mkdtemp's 0700 was widened
    assert (dest / "config.json").stat().st_mode & 0o004


def test_validate_accepts_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert validate_model_folder(tmp_path) == tmp_path.resolve()


@pytest.mark.parametrize("kind", ["missing", "file", "no-config"])
def test_validate_rejects_non_model_paths_clearly(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model"
    if kind == "file":
        path.write_text("not a folder")
    elif kind == "no-config":
        path.mkdir()
        (path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelFolderError) as info:
        validate_model_folder(path)
    message = info.value.message
    assert str(path) in message
    expected = {"missing": "does not exist", "file": "is a file", "no-config": "no config.json"}[kind]
    assert expected in message
