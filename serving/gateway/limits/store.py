"""Where limiter counters live: the ``Limiter`` interface and its in-process implementation.

``RayLimiter`` (``serving.gateway.limits.ray_store``) keeps the same counters in one
named Ray actor so that every ingress replica shares them; ``RedisLimiter``
(``serving.gateway.limits.redis_store``) keeps them in Redis, shared by every replica of
every cluster that points at it, and surviving restarts of the ingress and of Ray.
"""

from __future__ import annotations

from typing import Protocol

from serving.gateway.limits.buckets import Decision, LimiterCore, Limits


class LimiterUnavailable(Exception):
    """The counter store cannot be reached (the policy decides: fail open or closed)."""


class Limiter(Protocol):
    """An atomic check-and-reserve per key, and the release with real usage.

    ``request_id`` names the reservation: acquiring the same id again reserves nothing
    more (callers may retry), and a store whose call timed out releases that id.
    """

    name: str

    async def acquire(self, key: str, limits: Limits, tokens: int, request_id: str | None = None) -> Decision:
        """Reserve one request and ``tokens`` tokens, or a denied Decision; may raise LimiterUnavailable."""
        ...

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """End a reservation with the real token usage (``refund_request``: do not count it)."""
        ...


class LocalLimiter:
    """Counters in this process: right for one replica and for tests."""

    name = "memory"

    def __init__(self, *, lease_s: float = 900.0, core: LimiterCore | None = None) -> None:
        self.core = core if core is not None else LimiterCore()
        self.lease_s = lease_s

    async def acquire(self, key: str, limits: Limits, tokens: int, request_id: str | None = None) -> Decision:
        """Reserve in this process (never unavailable)."""
        return self.core.acquire(key, limits, tokens, self.lease_s, request_id)

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """End a reservation in this process."""
        self.core.release(key, reservation, actual_tokens, refund_request)
