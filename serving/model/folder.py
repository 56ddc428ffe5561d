"""Model folders on disk: build once, never mistake a partial folder for a complete one.

A folder is built in a temporary sibling directory, a marker file is written last, and
the directory is renamed into place in one step. A folder counts as complete only if
its marker carries the expected fingerprint and every file the marker lists is there
with its recorded size. A file lock next to the folder makes concurrent builders (two
replicas starting at once) wait for each other instead of converting twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from serving.errors import ServerError

MARKER_NAME = ".llm-serving-model.json"


class ModelFolderError(ServerError):
    """A model folder is missing, incomplete or not a Hugging Face model folder."""


def validate_model_folder(path: Path) -> Path:
    """Return ``path`` resolved if it is a folder with a ``config.json``; else raise clearly."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelFolderError(f"model path {folder} does not exist")
    if not folder.is_dir():
        raise ModelFolderError(
            f"model path {folder} is a file; expected a Hugging Face model folder "
            "(config.json, tokenizer files, *.safetensors)"
        )
    if not (folder / "config.json").is_file():
        raise ModelFolderError(
            f"model path {folder} has no config.json; expected a Hugging Face model folder "
            "(config.json, tokenizer files, *.safetensors)"
        )
    return folder.resolve()


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a built folder, or None if there is none or it is unreadable."""
    try:
        marker = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_complete(folder: Path, fingerprint: dict[str, Any]) -> bool:
    """True if ``folder`` was fully built from the source ``fingerprint`` describes."""
    marker = read_marker(folder)
    if marker is None or marker.get("fingerprint") != fingerprint:
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, size in files.items():
        file = folder / name
        if not file.is_file() or file.stat().st_size != size:
            return False
    return True


def build_once(dest: Path, fingerprint: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Return ``dest`` complete: reuse it, or run ``build(tmp_dir)`` and move it into place.

    ``build`` writes the folder's files into the directory it is given. The marker is
    written after it returns, and the directory is renamed to ``dest`` atomically.
    """
    dest = Path(dest).expanduser()
    if is_complete(dest, fingerprint):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest.parent / f".{dest.name}.lock"):
        if is_complete(dest, fingerprint):  # another process finished it while we waited
            return dest
        _remove_leftovers(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            build(tmp)
            _write_marker(tmp, fingerprint)
            _make_readable(tmp)
            _move_into_place(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _write_marker(folder: Path, fingerprint: dict[str, Any]) -> None:
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER_NAME
    }
    marker = {"fingerprint": fingerprint, "files": files, "created_at": time.time()}
    part = folder / (MARKER_NAME + ".part")
    part.write_text(json.dumps(marker, indent=2, sort_keys=True))
    os.replace(part, folder / MARKER_NAME)


def _make_readable(folder: Path) -> None:
    """Give the folder and its files the usual umask permissions (mkdtemp makes it 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _move_into_place(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``; a stale ``dest`` is moved aside first, then deleted."""
    trash = None
    if dest.exists() or dest.is_symlink():
        trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.rename(dest, trash / dest.name)
    os.rename(tmp, dest)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _remove_leftovers(dest: Path) -> None:
    """Delete temp/old dirs of earlier builds that died (we hold the lock: nobody uses them)."""
    for pattern in (f".{dest.name}.tmp-*", f".{dest.name}.old-*"):
        for leftover in dest.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
