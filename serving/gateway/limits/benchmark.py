"""What one limiter check costs per request: in process vs. the shared Ray actor (vs. Redis).

Run: ``python -m serving.gateway.limits.benchmark --out results.json`` (starts its own
local Ray; bounded in count; ``--redis-url redis://127.0.0.1:6379/0`` adds the Redis store). Measures acquire and acquire+release latency one call
at a time and with concurrent callers, and the actor's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from serving.gateway.limits.buckets import Limits
from serving.gateway.limits.store import Limiter, LocalLimiter

LIMITS = Limits(rpm=10**9, tpm=10**12, max_concurrent=10**6)


def _summary(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1e6

    return {
        "count": len(ordered),
        "mean_us": statistics.fmean(ordered) * 1e6,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "max_us": ordered[-1] * 1e6,
    }


async def _timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def measure(limiter: Limiter, *, n: int, concurrency: int) -> dict[str, Any]:
    """Latency of acquire, of acquire+release, and throughput under ``concurrency`` callers."""
    counter = iter(range(10**9))

    async def acquire() -> Any:
        return await limiter.acquire(f"key-{next(counter) % 100}", LIMITS, 100)

    async def round_trip() -> None:
        key = f"key-{next(counter) % 100}"
        decision = await limiter.acquire(key, LIMITS, 100)
        await limiter.release(key, decision.reservation, 80)

    await _timed(acquire, min(200, n))  # warm-up
    sequential = _summary(await _timed(acquire, n))
    with_release = _summary(await _timed(round_trip, n))
    per_task = max(1, n // concurrency)
    start = time.perf_counter()
    results = await asyncio.gather(*(_timed(acquire, per_task) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    concurrent = _summary([s for r in results for s in r])
    concurrent["throughput_per_s"] = per_task * concurrency / elapsed
    concurrent["callers"] = concurrency
    return {"acquire": sequential, "acquire_and_release": with_release, "acquire_concurrent": concurrent}


def main(argv: list[str] | None = None) -> None:
    """Run both stores and write a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ray-temp-dir", default="/tmp/ray-gateway-bench")
    parser.add_argument("--redis-url", default=None, help="also measure the Redis store at this URL")
    args = parser.parse_args(argv)

    import ray

    from serving.gateway.limits.ray_store import RayLimiter

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__},
        "requests": args.requests,
    }
    report["local"] = asyncio.run(measure(LocalLimiter(), n=args.requests, concurrency=args.concurrency))
    if args.redis_url:
        report["redis"] = asyncio.run(_measure_redis(args.redis_url, n=args.requests, concurrency=args.concurrency))
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024**2,
        _temp_dir=args.ray_temp_dir,
    )
    try:
        limiter = RayLimiter("gateway-limiter-benchmark", namespace="gateway-benchmark", timeout_s=5.0)
        report["ray_actor"] = asyncio.run(measure(limiter, n=args.requests, concurrency=args.concurrency))
    finally:
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("local", "ray_actor", "redis") if k in report}, indent=2))


async def _measure_redis(url: str, *, n: int, concurrency: int) -> dict[str, Any]:
    from serving.gateway.limits.redis_store import RedisLimiter

    limiter = RedisLimiter(url, prefix="gateway-limiter-benchmark", timeout_s=5.0)
    try:
        return await measure(limiter, n=n, concurrency=concurrency)
    finally:
        await limiter.close()


if __name__ == "__main__":
    main()
