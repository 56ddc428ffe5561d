"""What one request produced, built once when it ends, and the one mapping of how it ended.

The pipeline accumulates the stream it hands the client (after every stream hook) and,
at the end, builds one ``RequestResult``; policies' ``after``, observers (feedback,
audit), the request metrics and the request log all read it: nobody re-reads the
stream. ``outcome_for`` is the only place an exception becomes a status and an outcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from serving.errors import EngineAbortedError, ServingError

# Status recorded for a client that went away before the response ended (nginx's 499).
CLIENT_CLOSED_STATUS = 499


def outcome_for(exc: BaseException | None) -> tuple[int, str]:
    """The (HTTP status, bounded outcome label) a request ended with."""
    if exc is None:
        return 200, "ok"
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return CLIENT_CLOSED_STATUS, "aborted"
    if isinstance(exc, EngineAbortedError):
        return exc.status_code, "engine_aborted"
    if isinstance(exc, ServingError):
        code = exc.code or exc.error_type
        if exc.status_code == 429:
            return 429, "overloaded" if code == "overloaded" else "rate_limited"
        if code == "content_filter":
            return exc.status_code, "content_filter"
        if exc.status_code == 504:
            return 504, "timeout"
        return exc.status_code, "client_error" if exc.status_code < 500 else "server_error"
    return 500, "server_error"


@dataclass
class RequestResult:
    """One request's result: what the client was sent, usage, timings and how it ended.

    ``texts`` / ``finish_reasons`` are per choice index, as the client received them
    (after output moderation). Times are ``time.monotonic()`` seconds.
    """

    started: float
    status: int = 200
    outcome: str = "ok"
    error: BaseException | None = None
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_started: bool = False  # every policy admitted it and the engine was asked
    outputs: int = 0  # engine outputs the client was sent (0: refused before the first)
    first_token_at: float | None = None  # the first output that carried tokens
    ended: float | None = None

    @property
    def latency_s(self) -> float:
        """Seconds from the request's start to its end (0 while it runs)."""
        return 0.0 if self.ended is None else self.ended - self.started

    @property
    def ttft_s(self) -> float | None:
        """Seconds to the first output token, if there was one."""
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish reason (the log line's summary)."""
        return self.finish_reasons[0] if self.finish_reasons else None

    def add_text(self, index: int, text: str, finish: str | None) -> None:
        """Append one choice delta."""
        while len(self.texts) <= index:
            self.texts.append("")
            self.finish_reasons.append(None)
        if text:
            self.texts[index] += text
        if finish is not None:
            self.finish_reasons[index] = finish

    def end(self, error: BaseException | None, now: float) -> None:
        """Set how the request ended (once)."""
        self.error = error
        self.status, self.outcome = outcome_for(error)
        self.ended = now
