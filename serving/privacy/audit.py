"""The opt-in audit log: PII-redacted conversation text as JSON lines, with retention.

One file per UTC day (``audit-YYYY-MM-DD.jsonl``, mode 0600). Every record is written
with a single ``write()`` on a file opened with ``O_APPEND``, so several replica
processes on one node can share the folder without interleaving lines. Files older
than the retention limit are deleted when the log opens and on each day change.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from serving.privacy.pii import redact
from serving.config.privacy import AuditSettings

logger = logging.getLogger(__name__)

_FILE = re.compile(r"^audit-(\d{4})-(\d{2})-(\d{2})\.jsonl$")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class AuditLog:
    """Appends redacted audit records; deletes files past retention."""

    def __init__(
        self,
        directory: Path,
        *,
        retention_days: int,
        max_text_chars: int = 20_000,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.retention_days = retention_days
        self.max_text_chars = max_text_chars
        self._clock = clock
        self._lock = threading.Lock()
        self._day: dt.date | None = None
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.prune()

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> "AuditLog":
        """The audit log the settings describe (call only when ``settings.enabled``)."""
        return cls(settings.dir, retention_days=settings.retention_days, max_text_chars=settings.max_text_chars)

    def path_for(self, day: dt.date) -> Path:
        """The file of one UTC day."""
        return self.directory / f"audit-{day.isoformat()}.jsonl"

    def clean_text(self, text: str) -> str:
        """``text`` cut to the size limit, with PII and secrets redacted."""
        if len(text) > self.max_text_chars:
            text = text[: self.max_text_chars] + "…[truncated]"
        return redact(text)

    def write(self, record: dict[str, Any], *, text_fields: Iterable[str] = ()) -> None:
        """Append one record; ``text_fields`` name the values (str, list or messages) to redact."""
        now = self._clock()
        data = dict(record)
        for name in text_fields:
            if name in data:
                data[name] = self._clean(data[name])
        data.setdefault("ts", now.isoformat())
        line = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            if self._day != now.date():
                self._day = now.date()
                self.prune()
            fd = os.open(self.path_for(now.date()), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.clean_text(value)
        if isinstance(value, dict):
            return {k: self._clean(v) if k == "content" else v for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(v) for v in value]
        return value

    def prune(self) -> list[Path]:
        """Delete files older than the retention limit; return what was deleted."""
        cutoff = self._clock().date() - dt.timedelta(days=self.retention_days)
        deleted: list[Path] = []
        for path in self.directory.glob("audit-*.jsonl"):
            m = _FILE.match(path.name)
            if m is None:
                continue
            day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            if day < cutoff:
                try:
                    path.unlink()
                    deleted.append(path)
                except FileNotFoundError:  # another replica pruned it first
                    pass
        if deleted:
            logger.info("audit log: deleted %d file(s) past %d days", len(deleted), self.retention_days)
        return deleted
