"""OpenAI's rate-limit response headers, built from a limiter ``Decision``."""

from __future__ import annotations

import math

from serving.gateway.limits.buckets import Decision, Status


def duration(seconds: float) -> str:
    """A Go-style duration as OpenAI writes resets: ``20ms``, ``1.5s``, ``6m0s``, ``1h0m0s``."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    millis = math.ceil(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _status_headers(kind: str, status: Status | None) -> dict[str, str]:
    if status is None:
        return {}
    return {
        f"x-ratelimit-limit-{kind}": str(status.limit),
        f"x-ratelimit-remaining-{kind}": str(status.remaining),
        f"x-ratelimit-reset-{kind}": duration(status.reset_s),
    }


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of every limited dimension (none when unlimited)."""
    return {**_status_headers("requests", decision.requests), **_status_headers("tokens", decision.tokens)}
