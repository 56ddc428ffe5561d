"""Bounds of a JSON schema a request sends (``response_format``, ``structured_outputs``).

The engine compiles a schema into a grammar per request, so an unbounded one costs memory
and time before any token is sampled.
"""

from __future__ import annotations

import json
from typing import Any

MAX_SCHEMA_BYTES = 64 * 1024  # serialized as compact JSON, UTF-8
MAX_SCHEMA_DEPTH = 32  # nested objects and arrays, the schema object itself counted


def _nesting_depth(value: Any, limit: int) -> int:
    """How deep ``value``'s objects and arrays nest (iterative; stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def schema_error(value: Any) -> str | None:
    """Why a decoded schema is too big to accept, or None."""
    if _nesting_depth(value, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"the schema nests objects and arrays deeper than {MAX_SCHEMA_DEPTH} levels"
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_SCHEMA_BYTES:
        return f"the schema is {size} bytes as JSON; at most {MAX_SCHEMA_BYTES} are allowed"
    return None
