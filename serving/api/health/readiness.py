"""Readiness: the model can generate (a one-token probe, cached for a few seconds)."""

from __future__ import annotations

import asyncio
import secrets
import time

from serving.engine.protocol import Engine, GenerateRequest, SamplingOptions
from serving.errors import ServiceUnavailableError, ServingError

PROBE_TTL_S = 5.0


class Readiness:
    """Answers "can the engine generate right now?" without flooding it with probes."""

    def __init__(self, engine: Engine, ttl_s: float = PROBE_TTL_S) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._ok_until = 0.0
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """Return if ready; raise ServiceUnavailableError if not."""
        if time.monotonic() < self._ok_until:
            return
        async with self._lock:
            if time.monotonic() < self._ok_until:
                return
            await self.engine.check_health()
            probe = GenerateRequest(
                request_id=f"ready-{secrets.token_hex(6)}",
                sampling=SamplingOptions(max_tokens=1, temperature=0.0),
                prompt="ready",
            )
            try:
                async for _ in self.engine.generate(probe):
                    pass
            except ServingError as exc:
                raise ServiceUnavailableError(f"readiness probe failed: {exc.message}") from exc
            self._ok_until = time.monotonic() + self.ttl_s
