"""One request to an OpenAI-compatible endpoint over aiohttp, measured as it streams.

Times come from ``time.perf_counter`` in the load generator's process. For a streamed
request the client records when the response headers arrived, when each SSE event with
generated text arrived (TTFT is the first of these), and when the stream ended. Output
tokens come from the final ``usage`` chunk (``stream_options.include_usage``); a server
that sends no usage is measured by its count of text chunks instead.

The reply text is kept only in memory, for multi-turn sessions; it is never written to
results or logs.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from loadtests.sse import DONE, SSEParser
from loadtests.workloads import RequestSpec

ERROR_BODY_LIMIT = 300


@dataclass
class RequestResult:
    """The measurement of one request. Times are seconds on the run's perf_counter clock."""

    step: str
    user: int
    turn: int
    start: float
    end: float | None = None
    status: int = 0
    error_kind: str | None = None  # http_<code>, stream_error, timeout, connection, cancelled
    error: str | None = None
    first_token: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    tokens_from_usage: bool = False
    text: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        """True for a completed request with no error."""
        return self.error_kind is None and self.end is not None

    @property
    def ttft(self) -> float | None:
        """Seconds from sending to the first generated text."""
        return None if self.first_token is None else self.first_token - self.start

    @property
    def e2e(self) -> float | None:
        """Seconds from sending to the end of the response."""
        return None if self.end is None else self.end - self.start

    @property
    def itls(self) -> list[float]:
        """Gaps in seconds between consecutive text chunks."""
        times = self.chunk_times
        return [b - a for a, b in zip(times, times[1:])]

    @property
    def mean_itl(self) -> float | None:
        """The request's mean gap between text chunks, if it had two or more."""
        if len(self.chunk_times) < 2:
            return None
        return (self.chunk_times[-1] - self.chunk_times[0]) / (len(self.chunk_times) - 1)

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (e2e - TTFT) / (output tokens - 1)."""
        if self.end is None or self.first_token is None or not self.output_tokens:
            return None
        if self.output_tokens < 2:
            return None
        return (self.end - self.first_token) / (self.output_tokens - 1)


class OpenAIClient:
    """Sends chat/completions requests to one base URL with one aiohttp session."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        stream: bool = True,
        temperature: float = 0.0,
        extra_body: dict[str, Any] | None = None,
        connection_limit: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.stream = stream
        self.temperature = temperature
        self.extra_body = dict(extra_body or {})
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "OpenAIClient":
        connector = aiohttp.TCPConnector(limit=self._limit, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=self._timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, spec: RequestSpec) -> str:
        """The endpoint URL of a request."""
        path = "/chat/completions" if spec.endpoint == "chat" else "/completions"
        return self.base_url + path

    async def send(self, spec: RequestSpec, result: RequestResult, *, keep_text: bool) -> None:
        """Send ``spec`` and fill ``result`` in place (partial results survive cancellation)."""
        assert self._session is not None, "use `async with OpenAIClient(...)`"
        body = spec.body(
            self.model, stream=self.stream, temperature=self.temperature, extra=self.extra_body
        )
        try:
            async with self._session.post(self.url(spec), json=body) as response:
                result.status = response.status
                if response.status != 200:
                    result.error_kind = f"http_{response.status}"
                    result.error = _truncate(await response.text(errors="replace"))
                    result.end = time.perf_counter()
                    return
                if self.stream:
                    await _read_stream(response, result, keep_text=keep_text)
                else:
                    _read_json(await response.json(content_type=None), result, keep_text)
                result.end = time.perf_counter()
        except asyncio.CancelledError:
            result.error_kind, result.error = "cancelled", "cancelled at the end of the step"
            raise
        except asyncio.TimeoutError:
            result.error_kind, result.error = "timeout", "request timed out"
        except aiohttp.ClientError as exc:
            result.error_kind = "connection"
            result.error = _truncate(f"{type(exc).__name__}: {exc}")
        except (ValueError, KeyError, TypeError) as exc:  # malformed JSON from the server
            result.error_kind = "bad_response"
            result.error = _truncate(f"{type(exc).__name__}: {exc}")

    async def list_models(self) -> list[str]:
        """Model ids from ``GET /models``."""
        assert self._session is not None, "use `async with OpenAIClient(...)`"
        async with self._session.get(self.base_url + "/models") as response:
            response.raise_for_status()
            payload = await response.json(content_type=None)
        return [m["id"] for m in payload.get("data", [])]


async def _read_stream(
    response: aiohttp.ClientResponse, result: RequestResult, *, keep_text: bool
) -> None:
    """Consume an SSE response, timestamping every event that carries generated text."""
    parser = SSEParser()
    parts: list[str] = []
    chunks = 0
    done = False
    async for data in response.content.iter_any():
        now = time.perf_counter()
        for event in parser.feed(data):
            if _handle_event(event.data, now, result, parts):
                chunks += 1
            if event.data.strip() == DONE:
                done = True
    now = time.perf_counter()
    for event in parser.close():
        if _handle_event(event.data, now, result, parts):
            chunks += 1
        done = done or event.data.strip() == DONE
    if result.error_kind is None and not done:
        result.error_kind, result.error = "stream_error", "stream ended without data: [DONE]"
    if result.output_tokens is None:
        result.output_tokens = chunks
        result.tokens_from_usage = False
    if keep_text:
        result.text = "".join(parts)


def _handle_event(data: str, now: float, result: RequestResult, parts: list[str]) -> bool:
    """Apply one SSE event to ``result``; True when it carried generated text."""
    data = data.strip()
    if not data or data == DONE:
        return False
    payload = json.loads(data)
    if not isinstance(payload, dict):
        return False
    if payload.get("error"):
        error = payload["error"]
        result.error_kind = "stream_error"
        message = error.get("message", error) if isinstance(error, dict) else error
        result.error = _truncate(str(message))
        return False
    usage = payload.get("usage")
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        result.output_tokens = int(usage["completion_tokens"])
        result.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        result.tokens_from_usage = True
    text = "".join(_choice_text(choice) for choice in payload.get("choices") or [])
    if not text:
        return False
    if result.first_token is None:
        result.first_token = now
    result.chunk_times.append(now)
    parts.append(text)
    return True


def _choice_text(choice: dict[str, Any]) -> str:
    """Generated text in one streamed choice (chat delta or completions text)."""
    if "delta" in choice:
        delta = choice.get("delta") or {}
        return "".join(
            str(delta.get(key) or "") for key in ("content", "reasoning_content", "reasoning")
        )
    return str(choice.get("text") or "")


def _read_json(payload: dict[str, Any], result: RequestResult, keep_text: bool) -> None:
    """Measure a non-streamed response: only end-to-end latency and usage."""
    usage = payload.get("usage") or {}
    result.output_tokens = _int_or_none(usage.get("completion_tokens"))
    result.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
    result.tokens_from_usage = result.output_tokens is not None
    if keep_text:
        choice = (payload.get("choices") or [{}])[0]
        result.text = (choice.get("message") or {}).get("content") or choice.get("text") or ""


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_BODY_LIMIT else text[:ERROR_BODY_LIMIT] + "..."
