"""Where a target's CPU goes: CPU seconds per process role over one load step.

On a 2-core machine every CPU second the serving path spends is a second the engine
does not get, so "CPU per 1,000 output tokens, by role" is the measured reason behind a
throughput or latency gap between targets. Read from ``/proc`` (user + system time of
every process of the target: its process group and its recorded descendants), so it
costs nothing on the measured path and needs no agent in the target.

A process's role comes from its title (Ray and vLLM name their processes: ``ray::
ServeReplica:...``, ``VLLM::EngineCore``, ``VLLM::Worker``): engine worker (forward
passes), engine core (scheduler), replica, proxy, controller, Ray's raylet, GCS, agents
(dashboard, metrics, logs) and other Ray processes, server (the target's own top process,
e.g. vLLM's API server) and other. A process that starts and ends within one step is missed;
servers keep theirs for the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from loadtests.benchmark.process import stat_fields

TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# (role, substrings of the process title that mean it), first match wins
ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("engine_worker", ("VLLM::Worker",)),  # the model's forward passes
    ("engine_core", ("EngineCore",)),  # vLLM's scheduler loop
    ("replica", ("ServeReplica",)),
    ("proxy", ("ProxyActor", "haproxy")),
    ("controller", ("ServeController",)),
    ("raylet", ("raylet",)),
    ("gcs", ("gcs_server",)),
    ("ray_agents", ("dashboard", "agent", "log_monitor", "monitor.py", "runtime_env")),
    ("ray_other", ("ray::", "ray/_private", "default_worker.py")),
)
ROLE_ORDER = ("engine_worker", "engine_core", "replica", "proxy", "server", "controller", "raylet",
              "gcs", "ray_agents", "ray_other", "other")


def role_of(title: str, *, leader: bool) -> str:
    """The role of a process by its title (``/proc/PID/cmdline``, NULs as spaces)."""
    for role, needles in ROLES:
        if any(needle in title for needle in needles):
            return role
    return "server" if leader else "other"


def _proc_cpu(pid: int) -> tuple[str, float, str] | None:
    """(title, user+system CPU seconds, start time) of a live process, None when it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        if not title:  # a zombie has no command line left, only its name
            title = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return title, ticks / TICKS_PER_S, fields[19]


def snapshot(pids: Iterable[int], leader: int) -> dict[tuple[int, str], tuple[str, float]]:
    """(pid, start time) -> (role, CPU seconds) of each live process of ``pids``."""
    seen: dict[tuple[int, str], tuple[str, float]] = {}
    for pid in pids:
        found = _proc_cpu(pid)
        if found is not None:
            title, seconds, start = found
            seen[(pid, start)] = (role_of(title, leader=pid == leader), seconds)
    return seen


def cpu_by_role(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds spent per role between two snapshots (processes new since ``before`` count whole)."""
    spent: dict[str, float] = {}
    for key, (role, seconds) in after.items():
        start = before.get(key, (role, 0.0))[1]
        spent[role] = spent.get(role, 0.0) + max(0.0, seconds - start)
    return {role: round(spent[role], 3) for role in ROLE_ORDER if role in spent}


def step_meter(pids: Callable[[], Iterable[int]], leader: int) -> Callable[[], Callable[[], dict[str, Any]]]:
    """A probe for ``run_scenario``: call it when a step starts, call its result when it ends.

    ``pids``: the target's processes right now (called at both ends).
    """
    def start() -> Callable[[], dict[str, Any]]:
        before = snapshot(pids(), leader)

        def finish() -> dict[str, Any]:
            return {"cpu_s": cpu_by_role(before, snapshot(pids(), leader))}

        return finish

    return start


def per_thousand_tokens(step: dict[str, Any]) -> dict[str, float] | None:
    """CPU milliseconds per 1,000 output tokens, by role and in total, of one summary step."""
    cpu = (step.get("server") or {}).get("cpu_s")
    tokens = step.get("output_token_throughput", 0.0) * step.get("duration_s", 0.0)
    if not cpu or tokens <= 0:
        return None
    per = {role: 1e6 * seconds / tokens for role, seconds in cpu.items()}
    per["total"] = sum(per.values())
    return per
