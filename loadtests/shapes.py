"""Load shapes: closed-loop users and open-loop Poisson arrivals, each bounded and self-stopping.

Both drivers run *sessions* (one request for a single-turn workload, a whole
conversation for a multi-turn one):

- closed loop: ``users`` concurrent users, each running sessions back to back (with the
  workload's think time between turns), started evenly over ``ramp_up_s``;
- open loop: sessions arrive as a Poisson process of ``rate`` per second, whatever the
  server's speed; during ``ramp_up_s`` the rate rises linearly (thinning).

Every step stops issuing requests after ``max_requests`` requests or ``duration_s``
seconds, whichever comes first; requests still in flight get ``drain_timeout_s`` to
finish and are then cancelled (and recorded as such).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from loadtests.client import RequestResult
from loadtests.workloads import RequestSpec, Workload


class Sender(Protocol):
    """Sends one request and fills its result in place."""

    async def send(self, spec: RequestSpec, result: RequestResult, *, keep_text: bool) -> None: ...


class Observer(Protocol):
    """Told when requests start and finish (live progress, client metrics)."""

    def request_started(self) -> None: ...

    def request_finished(self, result: RequestResult) -> None: ...


@dataclass(frozen=True)
class StepPlan:
    """One step of a sweep: the load level and its bounds."""

    label: str
    mode: Literal["concurrency", "rate"]
    value: float
    max_requests: int
    duration_s: float
    ramp_up_s: float = 0.0
    drain_timeout_s: float = 30.0
    max_concurrency: int | None = None
    max_tokens: int | None = None


@dataclass
class StepOutcome:
    """What a step produced: every request's result and the step's wall-clock span."""

    plan: StepPlan
    results: list[RequestResult]
    started: float
    issuing_ended: float
    ended: float

    @property
    def duration(self) -> float:
        """Seconds from the step's start to its last request's end."""
        return self.ended - self.started


@dataclass
class _Budget:
    """The step's two bounds: requests left and the deadline for issuing new ones."""

    max_requests: int
    deadline: float
    issued: int = 0

    def take(self) -> bool:
        if self.issued >= self.max_requests or time.perf_counter() >= self.deadline:
            return False
        self.issued += 1
        return True

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.perf_counter())

    @property
    def exhausted(self) -> bool:
        return self.issued >= self.max_requests or time.perf_counter() >= self.deadline


@dataclass
class _Step:
    """Shared state of a running step."""

    plan: StepPlan
    workload: Workload
    sender: Sender
    observer: Observer
    budget: _Budget
    seed: int
    results: list[RequestResult] = field(default_factory=list)
    gate: asyncio.Semaphore | None = None

    async def session(self, user: int, rng: random.Random) -> None:
        """Run one session; ends early when the budget runs out or a turn fails."""
        session = self.workload.new_session(rng, max_tokens=self.plan.max_tokens)
        reply: str | None = None
        while True:
            spec = session.next_request(reply)
            if spec is None or not self.budget.take():
                return
            result = await self._measure(spec, user)
            if not result.ok:
                return
            reply = result.text
            if session.has_more:
                pause = min(session.think_time(rng), self.budget.remaining_s())
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _measure(self, spec: RequestSpec, user: int) -> RequestResult:
        if self.gate is not None:
            await self.gate.acquire()
        result = RequestResult(step=self.plan.label, user=user, turn=spec.turn,
                               start=time.perf_counter())
        self.results.append(result)
        self.observer.request_started()
        try:
            await self.sender.send(spec, result, keep_text=self.workload.multi_turn)
        finally:
            if self.gate is not None:
                self.gate.release()
            self.observer.request_finished(result)
        return result


async def run_step(
    plan: StepPlan, workload: Workload, sender: Sender, observer: Observer, *, seed: int = 0
) -> StepOutcome:
    """Run one bounded step of either shape and return every request's result."""
    started = time.perf_counter()
    step = _Step(plan, workload, sender, observer,
                 _Budget(plan.max_requests, started + plan.duration_s), seed)
    if plan.mode == "rate" and plan.max_concurrency:
        step.gate = asyncio.Semaphore(plan.max_concurrency)
    if plan.mode == "concurrency":
        tasks = [asyncio.create_task(_user(step, i)) for i in range(int(plan.value))]
        await _wait_issuing(step, tasks)
    else:
        tasks = set()
        await _arrivals(step, tasks)
    issuing_ended = time.perf_counter()
    await _drain(tasks, plan.drain_timeout_s)
    if any(r.end is None for r in step.results):  # cancelled or failed before an answer
        ended = time.perf_counter()
    else:
        ended = max((r.end for r in step.results if r.end is not None), default=started)
    return StepOutcome(plan, step.results, started, issuing_ended, max(ended, started))


async def _user(step: _Step, index: int) -> None:
    """A closed-loop user: sessions back to back until the budget runs out."""
    users = max(1, int(step.plan.value))
    delay = step.plan.ramp_up_s * index / users
    if delay:
        await asyncio.sleep(min(delay, step.budget.remaining_s()))
    rng = random.Random(step.seed * 1_000_003 + index)
    while not step.budget.exhausted:
        await step.session(index, rng)


async def _wait_issuing(step: _Step, tasks: list[asyncio.Task]) -> None:
    """Wait until all users have finished or the deadline has passed."""
    pending = {t for t in tasks if not t.done()}
    if pending:
        await asyncio.wait(pending, timeout=step.budget.remaining_s())


async def _arrivals(step: _Step, tasks: set[asyncio.Task]) -> None:
    """Open loop: start sessions at Poisson arrival times until the budget runs out."""
    rate, ramp = step.plan.value, step.plan.ramp_up_s
    rng = random.Random(step.seed)
    started = time.perf_counter()
    next_at = started
    index = 0
    while True:
        next_at += rng.expovariate(rate)
        if next_at >= step.budget.deadline or step.budget.exhausted:
            return
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if ramp and rng.random() > min(1.0, (next_at - started) / ramp):
            continue  # thinning: the rate rises linearly over the ramp
        session_rng = random.Random(step.seed * 1_000_003 + index)
        task = asyncio.create_task(step.session(index, session_rng))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1


async def _drain(tasks: list[asyncio.Task] | set[asyncio.Task], timeout_s: float) -> None:
    """Let in-flight requests finish for ``timeout_s``, then cancel what is left."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=timeout_s)
    for task in still:
        task.cancel()
    if still:
        await asyncio.gather(*still, return_exceptions=True)
