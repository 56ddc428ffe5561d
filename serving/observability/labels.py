"""Keeping metric label values bounded: known sets, safe tokens, and a cap on distinct values.

A label that takes unbounded values (request ids, raw paths, keys, text) multiplies the
series Prometheus stores without limit. Every label value we record passes through a
``BoundedLabel``; anything outside its bounds is recorded as ``other``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

OTHER = "other"

# A route template, an enum-like word or a version: short, no spaces, no query string.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./{}:+-]{1,64}$")


class BoundedLabel:
    """Maps raw values to a bounded set: ``allowed`` if given, else safe tokens up to a cap."""

    def __init__(self, allowed: Iterable[str] | None = None, *, max_values: int = 32) -> None:
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.max_values = max_values
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        """The value to record for ``value``: itself when in bounds, else ``other``."""
        if self.allowed is not None:
            return value if value in self.allowed else OTHER
        if not isinstance(value, str) or not _SAFE_VALUE.match(value):
            return OTHER
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self.max_values:
                return OTHER
            self._seen.add(value)
        return value


def status_class(status_code: int) -> str:
    """``2xx``/``4xx``/``5xx``... for an HTTP status code; ``other`` outside 100-599."""
    if 100 <= status_code <= 599:
        return f"{status_code // 100}xx"
    return OTHER
