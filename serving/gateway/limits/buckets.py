"""The limiting algorithm: token buckets for requests and tokens, leases for concurrency.

Pure and single-threaded (no I/O, an injectable clock), so the same code runs in
process for one replica and inside the shared Ray actor for many. A call to
``acquire`` checks every limit of a key and reserves in one step, so two replicas can
never both take the last slot.

Why buckets: a key limited to N rpm has a bucket of N requests refilled at N/60 per
second. A burst gets exactly N, then 429s whose ``Retry-After`` is when the next
request fits; the remaining/reset numbers are what OpenAI's ``x-ratelimit-*`` headers
mean (``reset`` = time until the bucket is full again). Tokens are reserved as
prompt + the output cap at admission and corrected with the real usage at release.

Reservations are named by the caller's request id, so an acquire is idempotent: a
retried acquire of the same id (a Ray task retry, a caller that timed out and tries
again) does not reserve twice. A release of an id that holds nothing is remembered for
``RELEASED_MEMORY_S``: a caller that timed out releases its id, and should its acquire
still arrive afterwards, it reserves nothing.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

WINDOW_S = 60.0  # rpm / tpm are per minute

REQUESTS = "requests"
TOKENS = "tokens"
CONCURRENCY = "concurrency"
TOO_LARGE = "too_large"
RELEASED = "released"  # the acquire of a request id whose release came first

RELEASED_MEMORY_S = 120.0  # how long a release of an unknown request id is remembered


@dataclass(frozen=True)
class Limits:
    """The limits applied to one key (None: unlimited in that dimension)."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None

    def is_unlimited(self) -> bool:
        """True when nothing is limited."""
        return self.rpm is None and self.tpm is None and self.max_concurrent is None


@dataclass(frozen=True)
class Status:
    """One limited dimension as the x-ratelimit headers show it."""

    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again


@dataclass(frozen=True)
class Decision:
    """The answer to one acquire: allowed with a reservation, or why not and when to retry."""

    allowed: bool
    reason: str | None = None  # REQUESTS / TOKENS / CONCURRENCY / TOO_LARGE when denied
    retry_after_s: float = 0.0
    reservation: str | None = None
    requests: Status | None = None
    tokens: Status | None = None
    concurrency_limit: int | None = None
    in_flight: int = 0


@dataclass
class Bucket:
    """A token bucket: ``capacity`` units, refilled at ``capacity / 60`` per second."""

    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        return self.capacity / WINDOW_S

    def refill(self, now: float) -> None:
        """Add what the elapsed time earned, up to capacity."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def resize(self, capacity: float) -> None:
        """Apply a changed limit, keeping what was used."""
        used = self.capacity - self.level
        self.capacity = capacity
        self.level = min(capacity, capacity - used)

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` units are available."""
        return max(0.0, (amount - self.level) / self.rate)

    def status(self) -> Status:
        """Limit, remaining and time to full, rounded as headers show them."""
        return Status(
            limit=int(self.capacity),
            remaining=max(0, math.floor(self.level + 1e-9)),
            reset_s=max(0.0, (self.capacity - self.level) / self.rate),
        )


@dataclass
class _Lease:
    expires: float
    tokens: int


@dataclass
class _KeyState:
    requests: Bucket | None = None
    tokens: Bucket | None = None
    leases: dict[str, _Lease] = field(default_factory=dict)
    released: dict[str, float] = field(default_factory=dict)  # request id -> forget after

    def expire(self, now: float) -> None:
        """Drop leases past their expiry and releases no longer remembered."""
        for rid in [r for r, lease in self.leases.items() if lease.expires <= now]:
            del self.leases[rid]
        for rid in [r for r, until in self.released.items() if until <= now]:
            del self.released[rid]


def _sync_bucket(bucket: Bucket | None, limit: int | None, now: float) -> Bucket | None:
    if limit is None:
        return None
    if bucket is None:
        return Bucket(capacity=float(limit), level=float(limit), updated=now)
    bucket.refill(now)
    if bucket.capacity != limit:
        bucket.resize(float(limit))
    return bucket


class LimiterCore:
    """Per-key buckets and leases; ``acquire`` is an atomic check-and-reserve."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, sweep_every: int = 1024) -> None:
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._epoch = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._calls = 0
        self._sweep_every = sweep_every

    def acquire(
        self, key: str, limits: Limits, tokens: int, lease_s: float, request_id: str | None = None
    ) -> Decision:
        """Reserve one request and ``tokens`` tokens for ``key`` as ``request_id``, or say why not.

        Idempotent per ``request_id``: while it holds a reservation, acquiring it again
        reserves nothing more; after its release arrived first, it reserves nothing.
        """
        now = self._clock()
        self._maybe_sweep(now)
        state = self._keys.setdefault(key, _KeyState())
        state.requests = _sync_bucket(state.requests, limits.rpm, now)
        state.tokens = _sync_bucket(state.tokens, limits.tpm, now)
        state.expire(now)
        if request_id is not None and request_id in state.leases:
            return self._decision(state, limits, allowed=True, reservation=request_id)
        if request_id is not None and request_id in state.released:
            return self._decision(state, limits, allowed=False, reason=RELEASED)
        denied = self._why_not(state, limits, tokens)
        if denied is not None:
            reason, retry = denied
            return self._decision(state, limits, allowed=False, reason=reason, retry=retry)
        if state.requests is not None:
            state.requests.level -= 1
        if state.tokens is not None:
            state.tokens.level -= tokens
        reservation = request_id if request_id is not None else f"{self._epoch}-{next(self._ids)}"
        state.leases[reservation] = _Lease(expires=now + lease_s, tokens=tokens)
        return self._decision(state, limits, allowed=True, reservation=reservation)

    def _why_not(self, state: _KeyState, limits: Limits, tokens: int) -> tuple[str, float] | None:
        if limits.max_concurrent is not None and len(state.leases) >= limits.max_concurrent:
            soonest = 1.0  # unknown: requests in flight end when they end
            return CONCURRENCY, soonest
        if state.requests is not None and state.requests.level < 1:
            return REQUESTS, state.requests.wait_for(1)
        if state.tokens is not None:
            if tokens > state.tokens.capacity:
                return TOO_LARGE, WINDOW_S
            if state.tokens.level < tokens:
                return TOKENS, state.tokens.wait_for(tokens)
        return None

    def _decision(
        self,
        state: _KeyState,
        limits: Limits,
        *,
        allowed: bool,
        reason: str | None = None,
        retry: float = 0.0,
        reservation: str | None = None,
    ) -> Decision:
        return Decision(
            allowed=allowed,
            reason=reason,
            retry_after_s=retry,
            reservation=reservation,
            requests=state.requests.status() if state.requests is not None else None,
            tokens=state.tokens.status() if state.tokens is not None else None,
            concurrency_limit=limits.max_concurrent,
            in_flight=len(state.leases),
        )

    def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """End a reservation: free its concurrency slot, charge real tokens instead of reserved.

        ``refund_request`` gives the request back too (it was refused for overload, not by us).
        A reservation that holds nothing (released already, expired, or whose acquire has
        not arrived yet) is remembered as released for ``RELEASED_MEMORY_S``.
        """
        now = self._clock()
        state = self._keys.get(key)
        lease = state.leases.pop(reservation, None) if state is not None else None
        if lease is None:
            self._keys.setdefault(key, _KeyState()).released[reservation] = now + RELEASED_MEMORY_S
            return
        assert state is not None
        if refund_request and state.requests is not None:
            state.requests.refill(now)
            state.requests.level = min(state.requests.capacity, state.requests.level + 1)
        if state.tokens is not None:
            state.tokens.refill(now)
            # Refund the over-reservation (or charge the excess: the level may go below 0).
            state.tokens.level = min(state.tokens.capacity, state.tokens.level + lease.tokens - actual_tokens)

    def in_flight(self, key: str) -> int:
        """Reservations of ``key`` not yet released."""
        state = self._keys.get(key)
        return len(state.leases) if state else 0

    def __len__(self) -> int:
        return len(self._keys)

    def _maybe_sweep(self, now: float) -> None:
        """Forget keys that are idle and full again (bounds memory with many keys)."""
        self._calls += 1
        if self._calls % self._sweep_every:
            return
        for key in list(self._keys):
            state = self._keys[key]
            state.expire(now)
            for bucket in (state.requests, state.tokens):
                if bucket is not None:
                    bucket.refill(now)
            full = all(b is None or b.level >= b.capacity for b in (state.requests, state.tokens))
            if full and not state.leases and not state.released:
                del self._keys[key]
