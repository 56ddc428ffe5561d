"""The Redis store: the same buckets and leases as ``LimiterCore``, in Redis, one Lua script per call.

For many ingress replicas or several clusters sharing one set of limits, and for
counters that survive restarts of the ingress and of Ray (as durable as the Redis
server is configured to be). Each ``acquire`` / ``release`` is one Lua script, which
Redis runs atomically, so check-and-reserve cannot interleave across replicas.

Per key four Redis keys share one hash tag (``{key}``: Redis Cluster keeps them on one
shard): ``buckets`` (hash: capacity, level, updated of the requests and tokens buckets),
``leases`` (sorted set: request id -> expiry), ``tokens`` (hash: request id -> tokens
reserved) and ``released`` (sorted set: request id -> forget after). Every call sets
their TTL to the time until the key is idle and full again, so nothing needs sweeping.

Time is Redis' own clock (``TIME``), the same for every replica; tests may pass a clock.
Semantics match ``LimiterCore`` exactly, idempotency per request id included
(``tests/unit/serving/gateway/limits/test_redis_store.py`` runs both on one script).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Callable

from serving.gateway.limits.buckets import RELEASED_MEMORY_S, Bucket, Decision, Limits, Status
from serving.gateway.limits.store import LimiterUnavailable

try:
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as exc:  # an optional extra
    raise ImportError("limits.store: redis needs the redis package: pip install 'llm-serving[redis]'") from exc

log = logging.getLogger(__name__)

_PRELUDE = """
local WINDOW = 60.0
local function num(x) return string.format('%.17g', x) end
local function clock(arg)
  local now = tonumber(arg)
  if now < 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return now
end
-- A bucket {cap, level} refilled up to now, or nil when the key has none.
local function load(prefix, now)
  local v = redis.call('HMGET', KEYS[1], prefix .. 'cap', prefix .. 'level', prefix .. 'updated')
  local cap, level, updated = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  if cap == nil then return nil end
  if now > updated then level = math.min(cap, level + (now - updated) * (cap / WINDOW)) end
  return {cap = cap, level = level}
end
local function save(prefix, b, now)
  if b == nil then
    redis.call('HDEL', KEYS[1], prefix .. 'cap', prefix .. 'level', prefix .. 'updated')
  else
    redis.call('HSET', KEYS[1], prefix .. 'cap', num(b.cap), prefix .. 'level', num(b.level), prefix .. 'updated', num(now))
  end
end
-- Keep the key until its buckets are full again and its leases / released ids are over.
local function keep(r, t, ttl)
  if r then ttl = math.max(ttl, (r.cap - r.level) / (r.cap / WINDOW)) end
  if t then ttl = math.max(ttl, (t.cap - t.level) / (t.cap / WINDOW)) end
  local ms = math.ceil(ttl * 1000) + 1000
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ms) end
end
"""

# KEYS: buckets, leases, tokens, released.
# ARGV: rpm, tpm, max_concurrent (-1: unlimited), tokens, lease_s, request_id, now (-1: Redis' clock), released_s
_ACQUIRE = _PRELUDE + """
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, lease_s, rid = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now, released_s = clock(ARGV[7]), tonumber(ARGV[8])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do redis.call('HDEL', KEYS[3], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local function sync(prefix, limit)
  if limit < 0 then return nil end
  local b = load(prefix, now)
  if b == nil then return {cap = limit, level = limit} end
  if b.cap ~= limit then
    local used = b.cap - b.level
    b.cap = limit
    b.level = math.min(limit, limit - used)
  end
  return b
end
local r, t = sync('r:', rpm), sync('t:', tpm)
local in_flight = redis.call('ZCARD', KEYS[2])
local allowed, reason, retry = 0, '', 0
if redis.call('ZSCORE', KEYS[2], rid) then
  allowed = 1
elseif redis.call('ZSCORE', KEYS[4], rid) then
  reason = 'released'
elseif maxc >= 0 and in_flight >= maxc then
  reason, retry = 'concurrency', 1
elseif r and r.level < 1 then
  reason, retry = 'requests', math.max(0, (1 - r.level) / (r.cap / WINDOW))
elseif t and tokens > t.cap then
  reason, retry = 'too_large', WINDOW
elseif t and t.level < tokens then
  reason, retry = 'tokens', math.max(0, (tokens - t.level) / (t.cap / WINDOW))
else
  allowed = 1
  if r then r.level = r.level - 1 end
  if t then t.level = t.level - tokens end
  redis.call('ZADD', KEYS[2], num(now + lease_s), rid)
  redis.call('HSET', KEYS[3], rid, tokens)
  in_flight = in_flight + 1
end
save('r:', r, now)
save('t:', t, now)
keep(r, t, math.max(lease_s, released_s))
local out = {allowed, reason, num(retry), in_flight, '', '', '', ''}
if r then out[5], out[6] = num(r.cap), num(r.level) end
if t then out[7], out[8] = num(t.cap), num(t.level) end
return out
"""

# KEYS: as acquire. ARGV: request_id, actual_tokens, refund_request (1/0), now (-1: Redis' clock), released_s, lease_s
_RELEASE = _PRELUDE + """
local rid, actual, refund = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local now, released_s, lease_s = clock(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local r, t = load('r:', now), load('t:', now)
if not redis.call('ZSCORE', KEYS[2], rid) then
  redis.call('ZADD', KEYS[4], num(now + released_s), rid)
  keep(r, t, math.max(lease_s, released_s))
  return 0
end
local reserved = tonumber(redis.call('HGET', KEYS[3], rid)) or 0
redis.call('ZREM', KEYS[2], rid)
redis.call('HDEL', KEYS[3], rid)
if refund and r then
  r.level = math.min(r.cap, r.level + 1)
  save('r:', r, now)
end
if t then
  t.level = math.min(t.cap, t.level + reserved - actual)
  save('t:', t, now)
end
keep(r, t, math.max(lease_s, released_s))
return 1
"""


def _status(cap: str, level: str) -> Status | None:
    return Bucket(capacity=float(cap), level=float(level), updated=0.0).status() if cap else None


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    """``Limiter`` backed by Redis (``redis.asyncio``), with a per-call timeout."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "serving-gateway-limiter",
        lease_s: float = 900.0,
        timeout_s: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._url = url  # may carry a password: never logged, never in an error message
        self.prefix = prefix
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._background: set[asyncio.Task] = set()

    def _redis(self) -> Any:
        """The client of the running event loop (a pool's connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = aioredis.from_url(
                self._url,
                decode_responses=True,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 1),  # one immediate retry on a stale pooled connection
            )
            self._loop = loop
            self._scripts = {
                "acquire": self._client.register_script(_ACQUIRE),
                "release": self._client.register_script(_RELEASE),
            }
        return self._client

    def _keys(self, key: str) -> list[str]:
        base = f"{self.prefix}:{{{key}}}"
        return [f"{base}:buckets", f"{base}:leases", f"{base}:tokens", f"{base}:released"]

    def _now(self) -> float:
        return -1.0 if self._clock is None else self._clock()

    async def _run(self, script: str, key: str, args: list[Any]) -> Any:
        try:
            self._redis()
            call = self._scripts[script](keys=self._keys(key), args=args)
            return await asyncio.wait_for(call, self.timeout_s)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            detail = f" ({exc})" if isinstance(exc, ResponseError) else ""  # a script error names no host
            raise LimiterUnavailable(f"redis limiter {script}: {type(exc).__name__}{detail}") from exc

    async def acquire(self, key: str, limits: Limits, tokens: int, request_id: str | None = None) -> Decision:
        """Reserve atomically in Redis; a timeout or cancellation releases ``request_id`` again."""
        request_id = request_id or uuid.uuid4().hex
        args = [
            _limit(limits.rpm), _limit(limits.tpm), _limit(limits.max_concurrent), tokens,
            self.lease_s, request_id, self._now(), RELEASED_MEMORY_S,
        ]
        try:
            raw = await self._run("acquire", key, args)
        except asyncio.CancelledError:
            self._undo(key, request_id)
            raise
        except LimiterUnavailable as exc:
            if isinstance(exc.__cause__, (asyncio.TimeoutError, RedisTimeoutError)):
                self._undo(key, request_id)  # the script may still run: take back what it reserves
            raise
        allowed, reason, retry, in_flight, rcap, rlevel, tcap, tlevel = raw
        return Decision(
            allowed=bool(int(allowed)),
            reason=reason or None,
            retry_after_s=float(retry),
            reservation=request_id if int(allowed) else None,
            requests=_status(rcap, rlevel),
            tokens=_status(tcap, tlevel),
            concurrency_limit=limits.max_concurrent,
            in_flight=int(in_flight),
        )

    async def release(self, key: str, reservation: str, actual_tokens: int, refund_request: bool = False) -> None:
        """Settle a reservation in Redis."""
        args = [reservation, actual_tokens, 1 if refund_request else 0, self._now(), RELEASED_MEMORY_S, self.lease_s]
        await self._run("release", key, args)

    def _undo(self, key: str, request_id: str) -> None:
        """Best effort, not awaited: release ``request_id`` (a no-op if its acquire never ran)."""

        async def undo() -> None:
            try:
                await self.release(key, request_id, 0, refund_request=True)
            except LimiterUnavailable as exc:
                log.debug("redis limiter: release after a timed-out acquire failed (%s)", exc)

        task = asyncio.ensure_future(undo())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def in_flight(self, key: str) -> int:
        """Open reservations of ``key`` (for tests)."""
        try:
            client = self._redis()
            return int(await asyncio.wait_for(client.zcard(self._keys(key)[1]), self.timeout_s))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise LimiterUnavailable(f"redis limiter in_flight: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close this loop's connections (pending background releases first, briefly)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=self.timeout_s)
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None
