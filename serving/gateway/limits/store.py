"""Where limiter counters live: the ``Limiter`` interface and its in-process implementation.

``RayLimiter`` (``serving.gateway.limits.ray_store``) keeps the same counters in one
named Ray actor so that every ingress replica shares them.
"""

from __future__ import annotations

from typing import Protocol

from serving.gateway.limits.buckets import Decision, LimiterCore, Limits


class LimiterUnavailable(Exception):
    """The counter store cannot be reached (the policy decides: fail open or closed)."""


class Limiter(Protocol):
    """An atomic check-and-reserve per key, and the release with real usage."""

    name: str

    async def acquire(self, key: str, limits: Limits, tokens: int) -> Decision:
        """Reserve one request and ``tokens`` tokens, or a denied Decision; may raise LimiterUnavailable."""
        ...

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """End a reservation with the real token usage (``refund_request``: do not count it)."""
        ...


class LocalLimiter:
    """Counters in this process: right for one replica and for tests."""

    name = "local"

    def __init__(self, *, lease_s: float = 900.0, core: LimiterCore | None = None) -> None:
        self.core = core if core is not None else LimiterCore()
        self.lease_s = lease_s

    async def acquire(self, key: str, limits: Limits, tokens: int) -> Decision:
        return self.core.acquire(key, limits, tokens, self.lease_s)

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        self.core.release(key, reservation, actual_tokens, refund_request)
