"""The shared limiter: one named Ray actor that every ingress replica calls.

The actor is synchronous, so Ray runs its calls one at a time: ``acquire`` is atomic
across replicas without locks. It is created on first use with ``get_if_exists`` in an
explicit namespace (Serve's, ``serve``, by default), ``detached`` so it outlives the
replica that happened to create it, restarted by Ray if its process dies (counters
then start afresh), and reserves no CPU. One round trip per request; measured by
``python -m serving.gateway.limits.benchmark``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray.exceptions import RayError

from serving.gateway.limits.buckets import Decision, LimiterCore, Limits
from serving.gateway.limits.store import LimiterUnavailable

log = logging.getLogger(__name__)


class LimiterActor:
    """The Ray actor body: a ``LimiterCore`` behind remote methods."""

    def __init__(self, lease_s: float) -> None:
        self.core = LimiterCore()
        self.lease_s = lease_s

    def acquire(self, key: str, limits: Limits, tokens: int) -> Decision:
        return self.core.acquire(key, limits, tokens, self.lease_s)

    def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        self.core.release(key, reservation, actual_tokens, refund_request)

    def in_flight(self, key: str) -> int:
        return self.core.in_flight(key)

    def ping(self) -> bool:
        return True


_RemoteLimiterActor = ray.remote(LimiterActor)


def get_or_create_actor(name: str, *, namespace: str | None = None, lease_s: float = 900.0) -> Any:
    """The handle of the named limiter actor, created if nobody has yet."""
    return _RemoteLimiterActor.options(
        name=name,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=0,
        max_restarts=-1,
        max_concurrency=1,
    ).remote(lease_s)


class RayLimiter:
    """``Limiter`` backed by the shared actor, with a per-call timeout."""

    name = "ray"

    def __init__(
        self,
        actor_name: str,
        *,
        namespace: str | None = None,
        lease_s: float = 900.0,
        timeout_s: float = 1.0,
    ) -> None:
        self.actor_name = actor_name
        self.namespace = namespace
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self._actor: Any = None

    def actor(self) -> Any:
        """The actor handle (looked up or created on first use)."""
        if self._actor is None:
            self._actor = get_or_create_actor(self.actor_name, namespace=self.namespace, lease_s=self.lease_s)
        return self._actor

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            ref = getattr(self.actor(), method).remote(*args)
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), self.timeout_s)
        except (RayError, asyncio.TimeoutError, ValueError) as exc:
            # Look the actor up again next time (it may have been restarted or recreated).
            self._actor = None
            raise LimiterUnavailable(f"limiter actor {self.actor_name!r}: {type(exc).__name__}") from exc

    async def acquire(self, key: str, limits: Limits, tokens: int) -> Decision:
        return await self._call("acquire", key, limits, tokens)

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        await self._call("release", key, reservation, actual_tokens, refund_request)

    async def in_flight(self, key: str) -> int:
        """Open reservations of ``key`` (for tests)."""
        return await self._call("in_flight", key)
