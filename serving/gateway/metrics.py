"""Metrics of every gateway decision (prefix ``serving_gateway_``), recorded at the decision.

Declared in ``serving.observability.catalog`` and recorded through a ``MetricsBackend``
(by default ``ray.serve.metrics``: Ray's metrics port, with a ``ray_`` prefix and the
deployment/replica tags added by Serve). Labels are bounded: model, policy, decision,
reason, tier — and the short key id only when ``metrics.label_key_id`` is on (then the
decisions counter is declared with the ``key_id`` label, otherwise without it).
A small in-process tally mirrors the counters so tests and ``/debug`` can read them.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Iterable

from serving.observability.backends import MetricsBackend, RayMetricsBackend
from serving.observability.catalog import (
    GATEWAY_DECISIONS,
    GATEWAY_DECISIONS_BY_KEY_ID,
    GATEWAY_IN_FLIGHT,
    GATEWAY_LIMITER_CHECK,
    GATEWAY_LIMITER_UNAVAILABLE,
)

# Decisions and reasons (bounded sets; the request metric's outcome is the lead's).
ALLOWED = "allowed"
DENIED = "denied"
CLAMPED = "clamped"
FAILED_OPEN = "failed_open"
FAILED_CLOSED = "failed_closed"


class GatewayMetrics:
    """The gateway's counters, gauges and histograms for one model."""

    def __init__(self, model: str, *, label_key_id: bool = False, backend: MetricsBackend | None = None) -> None:
        self.model = model
        self.label_key_id = label_key_id
        self.backend = backend if backend is not None else RayMetricsBackend()
        self._decisions = self.backend.instrument(GATEWAY_DECISIONS_BY_KEY_ID if label_key_id else GATEWAY_DECISIONS)
        self._in_flight = self.backend.instrument(GATEWAY_IN_FLIGHT)
        self._limiter_latency = self.backend.instrument(GATEWAY_LIMITER_CHECK)
        self._limiter_unavailable = self.backend.instrument(GATEWAY_LIMITER_UNAVAILABLE)
        self.tally: Tally[tuple[str, str, str]] = Tally()
        self.unavailable: Tally[tuple[str, str, str]] = Tally()  # (store, operation, action)

    def decision(
        self,
        policy: str,
        decision: str,
        reason: str = "",
        *,
        tier: str | None = None,
        key_id: str | None = None,
    ) -> None:
        """Count one decision of ``policy`` (e.g. rate_limit / denied / rpm)."""
        tags = {
            "model": self.model,
            "policy": policy,
            "decision": decision,
            "reason": reason,
            "tier": tier or "",
        }
        if self.label_key_id:
            tags["key_id"] = key_id or ""
        self._decisions.record(1, tags)
        self.tally[(policy, decision, reason)] += 1

    def in_flight(self, count: int) -> None:
        """Set the number of requests inside this replica."""
        self._in_flight.record(count, {"model": self.model})

    def limiter_check(self, seconds: float, store: str) -> None:
        """Observe the duration of one limiter call."""
        self._limiter_latency.record(seconds, {"model": self.model, "store": store})

    def limiter_unavailable(self, store: str, operation: str, action: str) -> None:
        """Count one limiter store call that failed or timed out."""
        tags = {"model": self.model, "store": store, "operation": operation, "action": action}
        self._limiter_unavailable.record(1, tags)
        self.unavailable[(store, operation, action)] += 1

    def count(self, policy: str, decision: str | None = None, reason: str | None = None) -> int:
        """How many decisions matched (for tests and debugging)."""
        return sum(
            n
            for (p, d, r), n in self.tally.items()
            if p == policy and decision in (None, d) and reason in (None, r)
        )

    def reasons(self, policy: str) -> Iterable[str]:
        """Every reason recorded for ``policy``."""
        return sorted({r for (p, _, r) in self.tally if p == policy})
