"""Metrics of every gateway decision (prefix ``serving_gateway_``), recorded at the decision.

Exported through ``ray.serve.metrics`` (Ray's metrics port, with a ``ray_`` prefix and
the deployment/replica tags added by Serve). Labels are bounded: model, policy,
decision, reason, tier — and the short key id only when ``metrics.label_key_id`` is on.
A small in-process tally mirrors the counters so tests and ``/debug`` can read them.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Iterable

from ray.serve.metrics import Counter, Gauge, Histogram

# Decisions and reasons (bounded sets; the request metric's outcome is the lead's).
ALLOWED = "allowed"
DENIED = "denied"
CLAMPED = "clamped"
FAILED_OPEN = "failed_open"
FAILED_CLOSED = "failed_closed"

_LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]


class GatewayMetrics:
    """The gateway's counters, gauges and histograms for one model."""

    def __init__(self, model: str, *, label_key_id: bool = False) -> None:
        self.model = model
        self.label_key_id = label_key_id
        tag_keys: tuple[str, ...] = ("model", "policy", "decision", "reason", "tier")
        if label_key_id:
            tag_keys += ("key_id",)
        self._decisions = Counter(
            "serving_gateway_decisions",
            description="Gateway policy decisions by policy, decision and reason.",
            tag_keys=tag_keys,
        )
        self._in_flight = Gauge(
            "serving_gateway_in_flight_requests",
            description="Requests inside this replica right now.",
            tag_keys=("model",),
        )
        self._limiter_latency = Histogram(
            "serving_gateway_limiter_check_seconds",
            description="Time of one shared-limiter check-and-reserve call.",
            boundaries=_LATENCY_BUCKETS_S,
            tag_keys=("model", "store"),
        )
        self._limiter_unavailable = Counter(
            "serving_gateway_limiter_unavailable",
            description="Limiter store calls that failed or timed out, by store, operation "
            "(acquire, release) and the consequence (failed_closed, failed_open, lease_expires).",
            tag_keys=("model", "store", "operation", "action"),
        )
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
        self._decisions.inc(1, tags=tags)
        self.tally[(policy, decision, reason)] += 1

    def in_flight(self, count: int) -> None:
        """Set the number of requests inside this replica."""
        self._in_flight.set(count, tags={"model": self.model})

    def limiter_check(self, seconds: float, store: str) -> None:
        """Observe the duration of one limiter call."""
        self._limiter_latency.observe(seconds, tags={"model": self.model, "store": store})

    def limiter_unavailable(self, store: str, operation: str, action: str) -> None:
        """Count one limiter store call that failed or timed out."""
        tags = {"model": self.model, "store": store, "operation": operation, "action": action}
        self._limiter_unavailable.inc(1, tags=tags)
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
