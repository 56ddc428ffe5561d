"""Runs a scenario: resolves the model, warms up, runs each step of the sweep, computes stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp

from loadtests.client import OpenAIClient, RequestResult
from loadtests.config import Scenario
from loadtests.machine import describe_machine
from loadtests.progress import Progress
from loadtests.shapes import StepOutcome, StepPlan, run_step
from loadtests.stats import StepStats, highest_holding, step_stats
from loadtests.workloads import Workload, load_workload


class TargetUnreachable(RuntimeError):
    """The target did not answer ``GET /models``."""


@dataclass
class RunResult:
    """Everything a run produced: per-step stats, raw per-request results and context."""

    scenario: Scenario
    model: str
    started_at: str
    machine: dict[str, Any]
    steps: list[StepStats] = field(default_factory=list)
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def highest_holding(self) -> float | None:
        """The highest swept load that held the SLO (see stats.highest_holding)."""
        return highest_holding(self.steps)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary (no per-request rows)."""
        scenario = self.scenario.model_dump(mode="json")
        scenario["target"].pop("api_key_env", None)
        return {
            "scenario": scenario,
            "model": self.model,
            "started_at": self.started_at,
            "machine": self.machine,
            "load_unit": "users" if self.scenario.load.mode == "concurrency" else "sessions/s",
            "highest_holding": self.highest_holding,
            "steps": [s.data for s in self.steps],
        }


def step_label(mode: str, value: float) -> str:
    """``c=4`` for 4 users, ``r=2.5/s`` for a rate."""
    return f"c={int(value)}" if mode == "concurrency" else f"r={value:g}/s"


async def resolve_model(client: OpenAIClient, wanted: str | None) -> str:
    """The scenario's model, or the first model the target serves."""
    if wanted:
        return wanted
    try:
        models = await client.list_models()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise TargetUnreachable(
            f"cannot list models at {client.base_url}/models ({type(exc).__name__}: {exc}); "
            "is the server running?"
        ) from exc
    if not models:
        raise TargetUnreachable(f"{client.base_url}/models lists no model")
    return models[0]


async def run_scenario(
    scenario: Scenario, *, progress: Progress | None = None, api_key: str | None = None,
    step_probe: Callable[[], Callable[[], dict[str, Any]]] | None = None,
) -> RunResult:
    """Run every step of ``scenario`` against its target and return the results.

    ``step_probe``: called when a step starts; what it returns is called when the step
    ends and its dict is the step's ``server`` entry (e.g. the server's CPU time).
    """
    progress = progress or Progress(enabled=False)
    workload = load_workload(scenario.workload.name, endpoint=scenario.workload.endpoint)
    if api_key is None and scenario.target.api_key_env:
        api_key = os.environ.get(scenario.target.api_key_env)
    load = scenario.load
    client = OpenAIClient(
        scenario.target.base_url, scenario.target.model or "", api_key=api_key,
        timeout_s=scenario.target.timeout_s, stream=scenario.workload.stream,
        temperature=scenario.workload.temperature, extra_body=scenario.workload.extra_body,
    )
    async with client:
        client.model = await resolve_model(client, scenario.target.model)
        run = RunResult(scenario, client.model, datetime.now(timezone.utc).isoformat(),
                        describe_machine())
        await _warm_up(client, workload, scenario)
        failed_in_a_row = 0
        for index, value in enumerate(load.step_values()):
            if index and load.pause_s:
                await asyncio.sleep(load.pause_s)
            plan = StepPlan(
                label=step_label(load.mode, value), mode=load.mode, value=value,
                max_requests=load.max_requests, duration_s=load.duration_s,
                ramp_up_s=load.ramp_up_s, drain_timeout_s=load.drain_timeout_s,
                max_concurrency=load.max_concurrency, max_tokens=scenario.workload.max_tokens,
            )
            finish = step_probe() if step_probe else None
            outcome, lag = await _run_with_progress(plan, workload, client, progress, scenario.seed)
            stats = step_stats(outcome, scenario.slo, loop_lag=lag)
            if finish is not None:
                stats.data["server"] = finish()
            run.outcomes.append(outcome)
            run.steps.append(stats)
            failed_in_a_row = 0 if stats.holds else failed_in_a_row + 1
            if load.stop_after_failed_steps and failed_in_a_row >= load.stop_after_failed_steps:
                break
    return run


async def _run_with_progress(
    plan: StepPlan, workload: Workload, client: OpenAIClient, progress: Progress, seed: int
) -> tuple[StepOutcome, dict | None]:
    progress.reset(plan.label, plan.max_requests)
    ticker = asyncio.create_task(progress.run())
    try:
        outcome = await run_step(plan, workload, client, progress, seed=seed)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    progress.render(final=True)
    return outcome, progress.loop_lag()


async def _warm_up(client: OpenAIClient, workload: Workload, scenario: Scenario) -> None:
    """Send ``warmup_requests`` requests one at a time; their results are discarded."""
    rng = random.Random(scenario.seed - 1)
    for _ in range(scenario.load.warmup_requests):
        spec = workload.new_session(rng, max_tokens=scenario.workload.max_tokens).next_request()
        assert spec is not None
        await client.send(spec, RequestResult("warmup", 0, 0, time.perf_counter()), keep_text=False)
