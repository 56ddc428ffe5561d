"""What the request policies cost per request: auth + limits + moderation + metrics, in process.

Run: ``python -m loadtests.benchmark.policy_cost [--requests N] [--json OUT] [--breakdown]``.

Two apps are built in this process by the production builder (``build_openai_app`` over
``serving.extensions.FEATURES``) on the fake engine, with no server, Ray or network:

- **policies**: API keys on (a keys file in a temporary folder), per-key limits on the
  in-memory store (limits high enough never to refuse), input and output moderation with
  the default rules and PII detectors, request metrics recorded into a prometheus-client
  registry;
- **baseline**: auth, limits and moderation off, request metrics into a backend that
  drops every value.

Both keep what cannot be switched off (request id, identity, hygiene and admission
policies, body-size middleware, the gateway's decision counters) and have feedback and
audit off. Every request is a streamed chat completion of 64 tokens from the fake
engine (no delay between tokens) sent through ``httpx.ASGITransport``, one at a time;
each round sends one request to every app, in an order rotated per round, so drifts
of a shared machine hit every app alike. The wall time of a request is from sending it
to the end of its stream. The cost is the difference of the p50s (goal: <= 1 ms,
issue 12); ``--breakdown`` adds one app per policy (auth, auth + limits, moderation,
metrics) to show where it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, Mapping, Sequence

import httpx

from loadtests.machine import describe_machine
from loadtests.stats import distribution
from serving.api.app import build_openai_app
from serving.config.settings import deep_merge, load_settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.observability.backends import PrometheusClientBackend
from serving.observability.metrics import RequestMetrics

GOAL_P50_MS = 1.0
OUTPUT_TOKENS = 64
API_KEY = "sk-policy-cost-0123456789abcdef"
MODEL = "fake-model"
# 64 one-word tokens of ordinary prose: moderation scans all of it and finds nothing.
REPLY = tuple(
    f" {word}" for word in (
        "The lighthouse keeper climbed the spiral stairs every evening to light the lamp, "
        "counting the steps as his father had taught him. Ships passed far out at sea, "
        "their lights small and steady, and he wrote each one into the logbook with the "
        "time, the weather and the direction of the wind. In winter the storms came from "
        "the north and the whole tower hummed like a bell."
    ).split()
)[:OUTPUT_TOKENS]
MESSAGES = (
    {"role": "system", "content": "You are a helpful assistant. Answer in plain prose."},
    {"role": "user", "content": "Tell me a short story about a lighthouse keeper and the sea."},
)

# Settings shared by every app: only what the benchmark is about differs between them.
COMMON: dict[str, Any] = {
    "model": {"id": MODEL},
    "feedback": {"enabled": False},
    "moderation": {"enabled": False},
}
AUTH: dict[str, Any] = {"gateway": {"auth": {"enabled": True}}}  # keys_file filled in at build
LIMITS: dict[str, Any] = {"gateway": {"limits": {
    "store": "memory",
    "tiers": {"default": {}, "bench": {"rpm": 10**7, "tpm": 10**10, "max_concurrent": 1000}},
}}}
MODERATION: dict[str, Any] = {"moderation": {"enabled": True, "check_input": True, "check_output": True}}


@dataclass(frozen=True)
class Variant:
    """One app to measure: which policies it switches on."""

    name: str
    description: str
    settings: Mapping[str, Any]
    metrics: bool


BASELINE = Variant("baseline", "auth, limits, moderation off; metrics dropped", {}, False)
POLICIES = Variant("policies", "auth + limits + input/output moderation + metrics",
                   deep_merge(deep_merge(AUTH, LIMITS), MODERATION), True)
BREAKDOWN = (
    Variant("auth", "API keys only (unlimited tier: the limiter is not consulted)", AUTH, False),
    Variant("auth+limits", "API keys and per-key limits (in-memory store)",
            deep_merge(AUTH, LIMITS), False),
    Variant("moderation", "input and output moderation only (default rules, PII)", MODERATION, False),
    Variant("metrics", "request metrics only (prometheus-client registry)", {}, True),
)


class _DroppedInstrument:
    def record(self, value: float, labels: Mapping[str, str]) -> None:
        return None


class DroppingBackend:
    """A metrics backend whose instruments drop every value (request metrics off)."""

    def instrument(self, spec: Any) -> _DroppedInstrument:
        """An instrument that records nothing."""
        return _DroppedInstrument()


def build_variant_app(variant: Variant, folder: Path) -> Any:
    """The production app for ``variant`` on a fresh fake engine (keys file in ``folder``)."""
    keys = folder / "keys.yaml"
    if not keys.exists():
        keys.write_text(f"keys: [{{key: {API_KEY}, tier: bench}}]\n")
    values = deep_merge(COMMON, variant.settings)
    if values.get("gateway", {}).get("auth", {}).get("enabled"):
        values = deep_merge(values, {"gateway": {"auth": {"keys_file": str(keys)}}})
    settings = load_settings(values)
    engine = FakeEngine(FakeEngineConfig(model_id=MODEL, max_model_len=4096, reply=REPLY))
    backend = PrometheusClientBackend() if variant.metrics else DroppingBackend()
    return build_openai_app(settings, engine, metrics=RequestMetrics(MODEL, backend=backend))


def request_body() -> dict[str, Any]:
    """The streamed chat completion every request sends."""
    return {"model": MODEL, "messages": list(MESSAGES), "max_tokens": OUTPUT_TOKENS,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}


async def timed_request(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, bytes]:
    """One request's wall time (s, send to end of stream) and its streamed body."""
    start = time.perf_counter()
    async with client.stream("POST", "/v1/chat/completions", json=body,
                             headers={"authorization": f"Bearer {API_KEY}"}) as response:
        data = b"".join([chunk async for chunk in response.aiter_bytes()])
        status = response.status_code
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
    return elapsed, data


def check_stream(data: bytes) -> None:
    """Fail unless the stream ended with [DONE] after a usage chunk of OUTPUT_TOKENS tokens."""
    events = [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        raise RuntimeError("stream did not end with data: [DONE]")
    usage = [json.loads(e)["usage"] for e in events[:-1] if json.loads(e).get("usage")]
    if not usage or usage[-1]["completion_tokens"] != OUTPUT_TOKENS:
        raise RuntimeError(f"expected {OUTPUT_TOKENS} output tokens, got usage {usage[-1:]}")


async def measure(variants: Sequence[Variant], *, requests: int, warmup: int) -> dict[str, list[float]]:
    """Per variant, the wall time (ms) of ``requests`` requests, rounds rotated across variants."""
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="policy-cost-") as tmp:
        apps = {v.name: build_variant_app(v, Path(tmp)) for v in variants}
        clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                           base_url="http://policy-cost")
                   for name, app in apps.items()}
        try:
            body = request_body()
            for client in clients.values():
                check_stream((await timed_request(client, body))[1])  # it streams what it should
                for _ in range(warmup):
                    await timed_request(client, body)
            names = list(clients)
            for index in range(requests):
                shift = index % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed, _ = await timed_request(clients[name], body)
                    samples[name].append(elapsed * 1000)
        finally:
            for client in clients.values():
                await client.aclose()
            for app in apps.values():
                app.state.extensions.close()
    return samples


def report(variants: Sequence[Variant], samples: dict[str, list[float]], *,
           requests: int, warmup: int, machine: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: per app the distribution, per app the cost against the baseline."""
    base = samples[BASELINE.name]
    apps: dict[str, Any] = {}
    for variant in variants:
        stats = distribution(samples[variant.name])
        entry: dict[str, Any] = {"description": variant.description, "wall_ms": stats}
        if variant.name != BASELINE.name:
            base_stats = distribution(base)
            paired = [a - b for a, b in zip(samples[variant.name], base)]
            entry["cost_ms"] = {
                "p50": stats["p50"] - base_stats["p50"],
                "p90": stats["p90"] - base_stats["p90"],
                "p99": stats["p99"] - base_stats["p99"],
                "paired_median": median(paired),  # median of (this - baseline) in the same round
            }
        apps[variant.name] = entry
    cost = apps[POLICIES.name]["cost_ms"]["p50"]
    return {
        "benchmark": "policy_cost",
        "requests": requests,
        "warmup": warmup,
        "output_tokens": OUTPUT_TOKENS,
        "stream": True,
        "goal_p50_ms": GOAL_P50_MS,
        "policy_cost_p50_ms": cost,
        "within_goal": cost <= GOAL_P50_MS,
        "apps": apps,
        "machine": machine,
    }


def table(result: dict[str, Any]) -> str:
    """The report as a small text table."""
    lines = [f"{'app':<12} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'cost p50':>9} "
             f"{'cost p90':>9} {'paired':>8}  what"]
    for name, entry in result["apps"].items():
        wall, cost = entry["wall_ms"], entry.get("cost_ms")
        costs = (f"{cost['p50']:>9.3f} {cost['p90']:>9.3f} {cost['paired_median']:>8.3f}"
                 if cost else f"{'-':>9} {'-':>9} {'-':>8}")
        lines.append(f"{name:<12} {wall['p50']:>8.3f} {wall['p90']:>8.3f} {wall['p99']:>8.3f} "
                     f"{costs}  {entry['description']}")
    verdict = "within" if result["within_goal"] else "above"
    load = result["machine"].get("load_average")
    lines.append(f"policy cost p50: {result['policy_cost_p50_ms']:.3f} ms per request "
                 f"({verdict} the {result['goal_p50_ms']:g} ms goal); {result['requests']} "
                 f"requests per app, {result['output_tokens']} streamed tokens each; "
                 f"load average {load} on {result['machine'].get('cores')} cores")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.benchmark.policy_cost",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per app")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests per app first")
    parser.add_argument("--breakdown", action="store_true",
                        help="also measure each policy alone (auth, auth+limits, moderation, metrics)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be >= 1 and --warmup >= 0")
    variants = [BASELINE, POLICIES, *(BREAKDOWN if args.breakdown else ())]
    machine_before = describe_machine()
    samples = asyncio.run(measure(variants, requests=args.requests, warmup=args.warmup))
    machine = {**describe_machine(), "load_average_at_start": machine_before["load_average"]}
    result = report(variants, samples, requests=args.requests, warmup=args.warmup, machine=machine)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"report: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
