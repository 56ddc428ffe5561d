"""The shared limiter: one named Ray actor that every ingress replica calls.

The actor is synchronous, so Ray runs its calls one at a time: ``acquire`` is atomic
across replicas without locks. It is created on first use with ``get_if_exists`` in an
explicit namespace (Serve's, ``serve``, by default), ``detached`` so it outlives the
replica that happened to create it, and reserves no CPU. One round trip per request;
measured by ``python -m serving.gateway.limits.benchmark``.

Restarts: Ray restarts the actor if its process dies (``max_restarts=-1``) and retries
the calls that were in flight (``max_task_retries=-1``; safe because acquire is
idempotent per request id and release of an unknown id is harmless). The actor
persists nothing: after a restart every key starts with full buckets and no leases
(for at most one window a key can use up to twice its limit). Use the Redis store
(``limits.store: redis``) for counters that survive restarts.

Timeouts: a call that does not answer within ``timeout_s`` raises ``LimiterUnavailable``
(the policy then fails closed or open). Until the actor answered once, a call may take
``startup_timeout_s``: the first request after a (re)deploy waits for the actor's
worker process to start instead of getting a 503. A timed-out or cancelled acquire may still be
processed by the actor later, so the caller sends a release for its request id right
away (same handle, so Ray delivers it after the acquire): nothing stays reserved until
the lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
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

    def acquire(self, key: str, limits: Limits, tokens: int, request_id: str | None = None) -> Decision:
        """``LimiterCore.acquire`` (idempotent per request id)."""
        return self.core.acquire(key, limits, tokens, self.lease_s, request_id)

    def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """``LimiterCore.release``."""
        self.core.release(key, reservation, actual_tokens, refund_request)

    def in_flight(self, key: str) -> int:
        """Open reservations of ``key``."""
        return self.core.in_flight(key)

    def ping(self) -> bool:
        """True (the actor answers)."""
        return True


_RemoteLimiterActor = ray.remote(LimiterActor)


def actor_options(name: str, *, namespace: str | None = None) -> dict[str, Any]:
    """Ray options of the named limiter actor: shared, detached, restarted, one call at a time."""
    return {
        "name": name,
        "namespace": namespace,
        "get_if_exists": True,
        "lifetime": "detached",
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,  # acquire is idempotent per request id; release of an unknown id is a no-op
        "max_concurrency": 1,
    }


def get_or_create_actor(name: str, *, namespace: str | None = None, lease_s: float = 900.0) -> Any:
    """The handle of the named limiter actor, created if nobody has yet."""
    return _RemoteLimiterActor.options(**actor_options(name, namespace=namespace)).remote(lease_s)


class RayLimiter:
    """``Limiter`` backed by the shared actor, with a per-call timeout."""

    name = "ray_actor"

    def __init__(
        self,
        actor_name: str,
        *,
        namespace: str | None = None,
        lease_s: float = 900.0,
        timeout_s: float = 1.0,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self.actor_name = actor_name
        self.namespace = namespace
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._actor: Any = None
        self._answered = False  # the actor answered this caller once: it is up

    def actor(self) -> Any:
        """The actor handle (looked up or created on first use)."""
        if self._actor is None:
            self._actor = get_or_create_actor(self.actor_name, namespace=self.namespace, lease_s=self.lease_s)
        return self._actor

    async def _call(self, method: str, *args: Any, undo: tuple[Any, ...] | None = None) -> Any:
        """One actor call within ``timeout_s``; ``undo``: the release to send if it does not answer."""
        actor = None
        try:
            actor = self.actor()
            ref = getattr(actor, method).remote(*args)
            timeout = self.timeout_s if self._answered else max(self.timeout_s, self.startup_timeout_s)
            result = await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
            self._answered = True
            return result
        except asyncio.CancelledError:
            self._undo(actor, undo)
            raise
        except (RayError, asyncio.TimeoutError, ValueError) as exc:
            if isinstance(exc, asyncio.TimeoutError):
                self._undo(actor, undo)
            # Look the actor up again next time (it may have been restarted or recreated).
            self._actor = None
            raise LimiterUnavailable(f"limiter actor {self.actor_name!r}: {type(exc).__name__}") from exc

    def _undo(self, actor: Any, release_args: tuple[Any, ...] | None) -> None:
        """Best effort: release what a call that never answered may still reserve (not awaited)."""
        if actor is None or release_args is None:
            return
        try:
            actor.release.remote(*release_args)
        except Exception as exc:  # the actor is gone: its reservation went with it
            log.debug("limiter actor %r: release after timeout not sent (%s)", self.actor_name, exc)

    async def acquire(self, key: str, limits: Limits, tokens: int, request_id: str | None = None) -> Decision:
        """Reserve on the shared actor; a timeout releases ``request_id`` again (best effort)."""
        request_id = request_id or uuid.uuid4().hex
        return await self._call(
            "acquire", key, limits, tokens, request_id, undo=(key, request_id, 0, True)
        )

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """Settle a reservation on the shared actor."""
        await self._call("release", key, reservation, actual_tokens, refund_request)

    async def in_flight(self, key: str) -> int:
        """Open reservations of ``key`` (for tests)."""
        return await self._call("in_flight", key)
