"""API keys: the keys file format, and a store that keeps only their hashes and re-reads the file.

The keys file is YAML (usually a Kubernetes Secret mounted as a file)::

    keys:
      - key: "sk-live-..."        # plaintext: hashed at load, the text is dropped at once
        tier: pro
      - sha256: "9f86d08...c15d" # or the hex SHA-256 of the key (nothing secret in the file)
        id: batch-jobs            # optional label for logs; default: first 8 hex of the hash
        limits: {rpm: 5, tpm: 2000, max_concurrent: 2}   # optional per-key override
        disabled: false

Keys are long random tokens, so an unsalted SHA-256 is enough to keep them out of
memory dumps and logs; the store is looked up by hash, never by the key text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serving.config.gateway import TierLimits

log = logging.getLogger(__name__)

KEY_ID_HEX = 8
_HEX = set("0123456789abcdef")


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key (what the store keeps)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key_hash: str) -> str:
    """The short, non-secret id of a key: the first 8 hex of its hash."""
    return key_hash[:KEY_ID_HEX]


class KeyEntry(BaseModel):
    """One entry of the keys file (exactly one of ``key`` or ``sha256``)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, min_length=8, repr=False)
    sha256: str | None = None
    id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    tier: str | None = None
    limits: TierLimits | None = None
    disabled: bool = False

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if len(value) != 64 or not set(value) <= _HEX:
            raise ValueError("sha256 must be 64 hex characters")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> "KeyEntry":
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of 'key' or 'sha256'")
        return self


class KeysFile(BaseModel):
    """The whole keys file."""

    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class KeyRecord:
    """What the store knows about one key: never the key itself."""

    key_hash: str
    key_id: str
    tier: str | None
    limits: TierLimits | None
    disabled: bool = False


class KeysFileError(ValueError):
    """The keys file cannot be read or is invalid (the message never contains key text)."""


def parse_keys(text: str, *, source: str = "keys file") -> dict[str, KeyRecord]:
    """Validate a keys file's text; return records by key hash."""
    try:
        loaded = yaml.safe_load(text) or {}
        parsed = KeysFile.model_validate(loaded)
    except yaml.YAMLError as exc:
        raise KeysFileError(f"{source}: not valid YAML (line {_yaml_line(exc)})") from None
    except ValidationError as exc:
        # Only locations and messages, never the input values (they may be keys).
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise KeysFileError(f"{source}: {problems}") from None
    records: dict[str, KeyRecord] = {}
    for index, entry in enumerate(parsed.keys):
        key_hash = entry.sha256 if entry.sha256 is not None else hash_key(entry.key or "")
        if key_hash in records:
            raise KeysFileError(f"{source}: keys.{index}: the same key appears twice")
        records[key_hash] = KeyRecord(
            key_hash=key_hash,
            key_id=entry.id or key_id_of(key_hash),
            tier=entry.tier,
            limits=entry.limits,
            disabled=entry.disabled,
        )
    ids = [r.key_id for r in records.values()]
    if len(ids) != len(set(ids)):
        raise KeysFileError(f"{source}: two keys share one id")
    return records


def _yaml_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return str(mark.line + 1) if mark is not None else "?"


class KeyStore:
    """Key hashes loaded from a file, re-read when the file changes (no restart needed).

    ``lookup`` checks the file at most every ``reload_interval_s`` (a stat, plus a read
    when the mtime, size or inode changed — a Kubernetes Secret update swaps a symlink).
    A file that became invalid is logged and the previous keys stay in force.
    """

    def __init__(
        self,
        path: Path,
        *,
        reload_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.reload_interval_s = reload_interval_s
        self._clock = clock
        self._records: dict[str, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self.reloads = 0
        self.reload_errors = 0
        self.load()  # the first load must succeed: a bad file at startup is fatal

    def __len__(self) -> int:
        return len(self._records)

    def load(self) -> None:
        """Read and validate the file now; raise KeysFileError if it is unusable."""
        try:
            stat = os.stat(self.path)
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeysFileError(f"{self.path}: cannot read ({exc.strerror})") from None
        self._records = parse_keys(text, source=str(self.path))
        self._by_id = {r.key_id: r for r in self._records.values()}
        self._signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self.reloads += 1
        log.info("loaded %d API keys from %s", len(self._records), self.path)

    def maybe_reload(self) -> None:
        """Re-read the file if the reload interval passed and the file changed."""
        now = self._clock()
        if now - self._checked_at < self.reload_interval_s:
            return
        self._checked_at = now
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            self.reload_errors += 1
            log.error("API keys file %s unreadable (%s); keeping %d keys", self.path, exc.strerror, len(self))
            return
        if (stat.st_mtime_ns, stat.st_size, stat.st_ino) == self._signature:
            return
        try:
            self.load()
        except KeysFileError as exc:
            self.reload_errors += 1
            log.error("API keys file rejected, keeping %d keys: %s", len(self), exc)

    def lookup(self, key: str) -> KeyRecord | None:
        """The record of a presented key, or None (unknown or disabled)."""
        self.maybe_reload()
        record = self._records.get(hash_key(key))
        if record is None or record.disabled:
            return None
        return record

    def by_id(self, key_id: str) -> KeyRecord | None:
        """The record with this short id (for per-key limit overrides), or None."""
        return self._by_id.get(key_id)
