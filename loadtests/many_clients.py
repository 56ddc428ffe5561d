"""Many concurrent streaming clients on the official ``openai`` client (issue 12).

Run: ``python -m loadtests.many_clients --base-url http://127.0.0.1:8000/v1 --model NAME
--clients 1000 --max-tokens 16 [--api-key K] [--deadline-s 600] [--json OUT]``.

All N clients start at once, each one streamed chat completion through one shared
``AsyncOpenAI`` (its default retries: 2, honouring ``Retry-After``; a connection pool
of N connections; a per-request timeout equal to the deadline, so no request is timed
out and retried before the run ends) and read to the end. Per client it records the
outcome (completed with a ``finish_reason``, or the error's status / kind), every HTTP
response the client got, retried ones included (seen through httpx's response hook:
the ``openai`` client hides them), the time to the first text (TTFT, retry waits
included) and the total time. At the deadline what is left is cancelled and counted as
not completed. Then the server's health is checked (``GET <root>/health`` and one small
completion, retried for ``--health-timeout-s``).

It prints a summary, writes it as JSON (``--json``) and exits 0 only when at least
``--min-completed-ratio`` of the clients completed, the server sent at most
``--max-5xx`` 5xx responses (retried ones count: a retry hides a 5xx from the caller,
not from the server) and the server was healthy afterwards. Targets are loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import openai

from loadtests.machine import describe_machine
from loadtests.safety import RemoteTargetRefused, check_target
from loadtests.stats import distribution

try:  # openai >= 3 is built on httpx2; earlier versions on httpx
    import httpx2 as httpx_lib
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as httpx_lib  # type: ignore[no-redef]

CLIENT_HEADER = "x-loadtest-client"  # which client sent a request (survives openai's retries)
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # set by openai on every attempt
PROMPT = "In one short sentence, what colour is the sky?"
EXIT_FAILED = 1
EXIT_USAGE = 2
PROGRESS_EVERY_S = 10.0
SAMPLES_PER_KIND = 3


@dataclass
class ClientOutcome:
    """What happened to one client's request (filled in while it runs)."""

    index: int
    kind: str = "pending"  # completed, http_<status>, timeout, connection, stream_error, deadline, ...
    status: int | None = None  # the final HTTP status (200 once the stream started)
    finish_reason: str | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    output_tokens: int | None = None
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.kind == "completed"


@dataclass
class ResponseLog:
    """Every HTTP response the shared client received, per client (httpx hooks)."""

    statuses: dict[int, list[int]] = field(default_factory=dict)
    attempts: Counter = field(default_factory=Counter)  # requests sent per client, retries included

    async def on_request(self, request: Any) -> None:
        client = request.headers.get(CLIENT_HEADER)
        if client is not None:
            self.attempts[int(client)] += 1

    async def on_response(self, response: Any) -> None:
        client = response.request.headers.get(CLIENT_HEADER)
        if client is not None:
            self.statuses.setdefault(int(client), []).append(response.status_code)


@dataclass(frozen=True)
class RunConfig:
    """One run's target, size and bounds."""

    base_url: str
    model: str
    clients: int
    max_tokens: int
    api_key: str = "unused"
    deadline_s: float = 600.0
    connect_timeout_s: float = 60.0
    health_timeout_s: float = 60.0
    prompt: str = PROMPT
    quiet: bool = False


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft open-file limit to its hard limit; returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard_target = max(soft, 65536)
    else:
        hard_target = hard
    if soft < hard_target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard_target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def api_root(base_url: str) -> str:
    """The server root of an OpenAI base URL (``http://h:p/v1`` -> ``http://h:p``)."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def make_client(config: RunConfig, log: ResponseLog) -> openai.AsyncOpenAI:
    """The one ``AsyncOpenAI`` all clients share: default retries, a pool of N connections."""
    connect_s = min(config.connect_timeout_s, config.deadline_s)
    timeout = httpx_lib.Timeout(config.deadline_s, connect=connect_s)
    pool = httpx_lib.Limits(max_connections=config.clients, max_keepalive_connections=config.clients)
    http_client = openai.DefaultAsyncHttpxClient(
        limits=pool,
        timeout=timeout,
        event_hooks={"request": [log.on_request], "response": [log.on_response]},
    )
    return openai.AsyncOpenAI(base_url=config.base_url, api_key=config.api_key,
                              timeout=timeout, http_client=http_client)


async def stream_one(client: openai.AsyncOpenAI, config: RunConfig, outcome: ClientOutcome) -> None:
    """One streamed chat completion, read to the end, recorded into ``outcome``."""
    start = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model=config.model,
            messages=[{"role": "user", "content": f"{config.prompt} (client {outcome.index})"}],
            max_tokens=config.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={CLIENT_HEADER: str(outcome.index)},
        )
        outcome.status = 200
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    outcome.output_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.delta.content and outcome.ttft_s is None:
                        outcome.ttft_s = time.perf_counter() - start
                    if choice.finish_reason:
                        outcome.finish_reason = choice.finish_reason
        outcome.kind = "completed" if outcome.finish_reason else "no_finish_reason"
    except openai.APIStatusError as exc:
        outcome.kind, outcome.status = f"http_{exc.status_code}", exc.status_code
        outcome.error = _describe(exc)
    except openai.APITimeoutError as exc:
        outcome.kind, outcome.error = "timeout", str(exc)
    except openai.APIConnectionError as exc:
        outcome.kind, outcome.error = "connection", repr(exc.__cause__ or exc)
    except openai.APIError as exc:  # an error event inside a 200 stream
        outcome.kind, outcome.error = "stream_error", str(exc)
    except Exception as exc:  # noqa: BLE001 - any other failure is this client's outcome
        outcome.kind, outcome.error = f"error_{type(exc).__name__}", str(exc)
    finally:
        outcome.total_s = time.perf_counter() - start


def _describe(exc: openai.APIStatusError) -> str:
    """The error's message, a body that is not OpenAI's error JSON, and its Retry-After."""
    text = str(exc)
    if isinstance(exc.body, str) and exc.body:
        text += f" - body: {exc.body}"
    retry_after = exc.response.headers.get("retry-after")
    return text if retry_after is None else f"{text} (Retry-After: {retry_after})"


async def run_clients(config: RunConfig, log: ResponseLog) -> tuple[list[ClientOutcome], float]:
    """Start every client at once; at the deadline cancel the rest. Returns outcomes, seconds."""
    outcomes = [ClientOutcome(i) for i in range(config.clients)]
    client = make_client(config, log)
    start = time.perf_counter()
    tasks = [asyncio.create_task(stream_one(client, config, o)) for o in outcomes]
    progress = None if config.quiet else asyncio.create_task(_progress(outcomes, log, start))
    try:
        _, pending = await asyncio.wait(tasks, timeout=config.deadline_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        if progress is not None:
            progress.cancel()
        await client.close()
    duration = time.perf_counter() - start
    for outcome in outcomes:
        if outcome.kind == "pending":
            outcome.kind, outcome.error = "deadline", f"still running after {config.deadline_s:g} s"
    return outcomes, duration


async def _progress(outcomes: Sequence[ClientOutcome], log: ResponseLog, start: float) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        kinds = Counter(o.kind for o in outcomes)
        responses = Counter(s for statuses in log.statuses.values() for s in statuses)
        print(f"[many_clients] {time.perf_counter() - start:6.1f}s  completed {kinds['completed']}"
              f"  running {kinds['pending']}  failed {len(outcomes) - kinds['completed'] - kinds['pending']}"
              f"  responses {dict(sorted(responses.items()))}", file=sys.stderr, flush=True)


async def check_health(config: RunConfig) -> dict[str, Any]:
    """``GET <root>/health`` 200 and one small completion, tried until ``health_timeout_s``."""
    root = api_root(config.base_url)
    deadline = time.monotonic() + config.health_timeout_s
    tries, last = 0, ""
    client = openai.AsyncOpenAI(base_url=config.base_url, api_key=config.api_key, max_retries=0, timeout=30)
    try:
        async with httpx_lib.AsyncClient(timeout=10) as http:
            while True:
                tries += 1
                try:
                    health = await http.get(f"{root}/health")
                    if health.status_code != 200:
                        raise RuntimeError(f"GET /health answered {health.status_code}")
                    reply = await client.chat.completions.create(
                        model=config.model, max_tokens=4,
                        messages=[{"role": "user", "content": "Say OK."}])
                    return {"healthy": True, "tries": tries, "finish_reason": reply.choices[0].finish_reason}
                except Exception as exc:  # noqa: BLE001 - not healthy yet
                    last = f"{type(exc).__name__}: {exc}"[:300]
                if time.monotonic() + 2 > deadline:
                    return {"healthy": False, "tries": tries, "last_error": last}
                await asyncio.sleep(2)
    finally:
        await client.close()


def summarize(config: RunConfig, outcomes: Sequence[ClientOutcome], log: ResponseLog,
              duration_s: float, health: dict[str, Any]) -> dict[str, Any]:
    """The run's JSON summary (no prompt or reply text)."""
    completed = [o for o in outcomes if o.completed]
    responses = Counter(s for statuses in log.statuses.values() for s in statuses)
    attempts = Counter(log.attempts[o.index] for o in outcomes)
    samples: dict[str, list[str]] = {}
    for o in outcomes:
        if o.error and len(samples.setdefault(o.kind, [])) < SAMPLES_PER_KIND:
            samples[o.kind].append(o.error[:300])
    return {
        "tool": "loadtests.many_clients",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": {"base_url": config.base_url, "model": config.model},
        "settings": {"clients": config.clients, "max_tokens": config.max_tokens,
                     "deadline_s": config.deadline_s, "request_timeout_s": config.deadline_s,
                     "connect_timeout_s": min(config.connect_timeout_s, config.deadline_s),
                     "max_retries": openai.DEFAULT_MAX_RETRIES, "openai": openai.__version__},
        "clients": config.clients,
        "completed": len(completed),
        "completed_ratio": len(completed) / config.clients if config.clients else 0.0,
        "outcomes": dict(Counter(o.kind for o in outcomes).most_common()),
        "final_status_counts": {str(k): v for k, v in sorted(Counter(
            o.status for o in outcomes if o.status is not None).items())},
        "response_status_counts": {str(k): v for k, v in sorted(responses.items())},
        "server_errors_5xx": sum(v for k, v in responses.items() if k >= 500),
        "retries": {"clients_retried": sum(v for k, v in attempts.items() if k > 1),
                    "retries_total": sum((k - 1) * v for k, v in attempts.items() if k > 1),
                    "clients_by_attempts": {str(k): v for k, v in sorted(attempts.items())}},
        "finish_reasons": dict(Counter(o.finish_reason for o in completed)),
        "ttft_ms": distribution((o.ttft_s for o in completed), scale=1000.0),
        "total_ms": distribution((o.total_s for o in completed), scale=1000.0),
        "output_tokens": sum(o.output_tokens or 0 for o in completed),
        "duration_s": round(duration_s, 3),
        "healthy_after": bool(health.get("healthy")),
        "health": health,
        "error_samples": samples,
    }


def judge(summary: dict[str, Any], min_completed_ratio: float, max_5xx: int) -> list[str]:
    """The criteria ``summary`` misses (empty: it passed)."""
    failures = []
    if summary["completed_ratio"] < min_completed_ratio:
        failures.append(f"completed {summary['completed_ratio']:.2%} < {min_completed_ratio:.2%}")
    if summary["server_errors_5xx"] > max_5xx:
        failures.append(f"{summary['server_errors_5xx']} 5xx responses > {max_5xx}")
    if not summary["healthy_after"]:
        failures.append(f"server not healthy afterwards: {summary['health'].get('last_error')}")
    return failures


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines."""
    ttft, total = summary["ttft_ms"] or {}, summary["total_ms"] or {}
    retries = summary["retries"]
    return "\n".join([
        f"clients {summary['clients']}  completed {summary['completed']} "
        f"({summary['completed_ratio']:.2%})  in {summary['duration_s']:.1f} s",
        f"outcomes {summary['outcomes']}",
        f"HTTP responses (retries included) {summary['response_status_counts']}  "
        f"5xx {summary['server_errors_5xx']}",
        f"retried clients {retries['clients_retried']}  retries {retries['retries_total']}  "
        f"clients by attempts {retries['clients_by_attempts']}",
        f"TTFT ms p50 {ttft.get('p50', float('nan')):.0f}  p99 {ttft.get('p99', float('nan')):.0f}  "
        f"total ms p50 {total.get('p50', float('nan')):.0f}  p99 {total.get('p99', float('nan')):.0f}",
        f"healthy afterwards: {summary['healthy_after']}",
        "PASS" if summary["passed"] else "FAIL: " + "; ".join(summary["failures"]),
    ])


async def run(config: RunConfig, *, min_completed_ratio: float = 0.99, max_5xx: int = 0) -> dict[str, Any]:
    """Run the clients, check the server's health and return the judged summary."""
    log = ResponseLog()
    outcomes, duration = await run_clients(config, log)
    health = await check_health(config)
    summary = summarize(config, outcomes, log, duration, health)
    summary["criteria"] = {"min_completed_ratio": min_completed_ratio, "max_5xx": max_5xx,
                           "healthy_after": True}
    summary["failures"] = judge(summary, min_completed_ratio, max_5xx)
    summary["passed"] = not summary["failures"]
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.many_clients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True,
                        help="OpenAI base URL on loopback, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="model id to send")
    parser.add_argument("--clients", type=int, default=1000, help="concurrent streaming clients")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--api-key", default="unused", help="API key sent as Bearer token")
    parser.add_argument("--deadline-s", type=float, default=600.0,
                        help="the run stops here; also each request's timeout")
    parser.add_argument("--connect-timeout-s", type=float, default=60.0)
    parser.add_argument("--health-timeout-s", type=float, default=60.0,
                        help="how long the health check afterwards may retry")
    parser.add_argument("--prompt", default=PROMPT, help="the user message (the client number is appended)")
    parser.add_argument("--min-completed-ratio", type=float, default=0.99)
    parser.add_argument("--max-5xx", type=int, default=0, help="5xx responses allowed (retried ones count)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run from the command line; 0 when every criterion held, 1 when one failed, 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        base_url = check_target(args.base_url)
    except RemoteTargetRefused:
        print(f"error: refusing {args.base_url!r}: this tool sends load to loopback only "
              "(127.0.0.1, ::1, localhost)", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.clients < 1 or args.max_tokens < 1 or args.deadline_s <= 0:
        print("error: --clients, --max-tokens and --deadline-s must be positive", file=sys.stderr)
        return EXIT_USAGE
    soft, hard = raise_open_file_limit()
    if soft < args.clients + 64:
        print(f"warning: open-file limit {soft} (hard {hard}) is tight for {args.clients} sockets",
              file=sys.stderr)
    config = RunConfig(base_url=base_url, model=args.model, clients=args.clients,
                       max_tokens=args.max_tokens, api_key=args.api_key, deadline_s=args.deadline_s,
                       connect_timeout_s=args.connect_timeout_s, health_timeout_s=args.health_timeout_s,
                       prompt=args.prompt, quiet=args.quiet)
    machine = describe_machine()  # its load average is the one at the start
    summary = asyncio.run(run(config, min_completed_ratio=args.min_completed_ratio, max_5xx=args.max_5xx))
    summary["open_file_limit"] = [soft, hard]
    summary["machine"] = {**machine, "load_average_after": describe_machine()["load_average"]}
    print(format_summary(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["passed"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
