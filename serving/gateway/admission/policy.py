"""Admission control: refuse with 429 + Retry-After (never 503) when the model's queue is full.

The load is what the engine reports (running + waiting requests) and what this
replica has admitted but the engine may not have seen yet (a burst arrives faster than
the engine queues it), whichever is larger. Capacity is the engine's running batch
plus ``admission.max_waiting``, or ``admission.max_in_flight`` when set.

``AdmissionController`` is the check itself, usable where the engine is (the model
replica); ``AdmissionPolicy`` runs it as a request policy in the colocated topology,
or only counts in-flight requests where the engine is remote (split ingress).
"""

from __future__ import annotations

from typing import Callable

from serving.engine.protocol import EngineLoad, GenerateRequest
from serving.errors import OverloadedError
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.gateway.metrics import ALLOWED, DENIED, GatewayMetrics
from serving.config.gateway import AdmissionSettings

RETRY_AFTER = "retry-after"
OVERLOADED_ANNOTATION = "overloaded"  # ctx.annotations flag set on an overload refusal


class AdmissionController:
    """Counts requests admitted next to one engine and refuses new ones over capacity."""

    def __init__(
        self,
        load: Callable[[], EngineLoad],
        settings: AdmissionSettings,
        *,
        metrics: GatewayMetrics,
        enforce: bool = True,
    ) -> None:
        self._load = load
        self.settings = settings
        self.metrics = metrics
        self.enforce = enforce and settings.enabled
        self._admitted: set[str] = set()

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet finished."""
        return len(self._admitted)

    def capacity(self, load: EngineLoad) -> int:
        """How many requests may be in the engine (running + waiting) at once."""
        if self.settings.max_in_flight is not None:
            return self.settings.max_in_flight
        return load.max_running + self.settings.max_waiting

    def admit(self, request_id: str, *, tier: str | None = None, key_id: str | None = None) -> None:
        """Count ``request_id`` in, or raise OverloadedError (429 + Retry-After)."""
        if self.enforce:
            load = self._load()
            busy = max(load.running + load.waiting, self.in_flight)
            if busy >= self.capacity(load):
                self.metrics.decision("admission", DENIED, "queue_full", tier=tier, key_id=key_id)
                raise OverloadedError(
                    "The model is at capacity right now. Please retry after a short wait.",
                    headers={RETRY_AFTER: str(self.settings.retry_after_s)},
                )
            self.metrics.decision("admission", ALLOWED, tier=tier, key_id=key_id)
        self._admitted.add(request_id)
        self.metrics.in_flight(self.in_flight)

    def release(self, request_id: str) -> None:
        """Count ``request_id`` out (no-op if it was never admitted)."""
        if request_id in self._admitted:
            self._admitted.discard(request_id)
            self.metrics.in_flight(self.in_flight)


class AdmissionPolicy:
    """``AdmissionController`` as a request policy (keyed by the unique response id)."""

    name = "admission"

    def __init__(self, controller: AdmissionController) -> None:
        self.controller = controller

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        try:
            self.controller.admit(ctx.response_id, tier=ctx.tier, key_id=ctx.key_id)
        except OverloadedError as exc:
            ctx.response_headers.update(exc.headers)
            ctx.annotations[OVERLOADED_ANNOTATION] = True
            raise
        return None

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        self.controller.release(ctx.response_id)
