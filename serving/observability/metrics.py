"""Request-level metrics of our own (prefix ``serving_``), recorded at the event.

INTERFACE STUB: the observability work fills this in with ``ray.serve.metrics``
(exported on Ray's metrics port). The request path calls exactly these methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RequestRecord:
    """The metrics of one request, from arrival to its last byte."""

    owner: "RequestMetrics"
    route: str
    start: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None

    def queue_wait(self, seconds: float) -> None:
        """Time the request waited before the engine started it."""

    def tokens(self, count: int) -> None:
        """``count`` output tokens arrived now (first call marks time to first token)."""
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now

    def disconnected(self) -> None:
        """The client went away before the response ended (the engine request was aborted)."""

    def finish(
        self, *, status_code: int, outcome: str, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """The request ended with this HTTP status and outcome (ok, client_error, ...)."""


class RequestMetrics:
    """All request metrics of one model deployment replica."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def start(self, route: str) -> RequestRecord:
        """A request to ``route`` (a route template) arrived."""
        return RequestRecord(owner=self, route=route)
