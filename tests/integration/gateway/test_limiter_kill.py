"""The shared limiter actor killed under real traffic, end to end.

The tiny-model stack in the split topology (two ingress replicas sharing one limiter
actor, ``limits.store`` left at its default: the Ray actor), API keys on. A few threads
send steady, bounded traffic with one metered key while the test kills the limiter actor
(``ray.kill``, no restart: the next caller has to create it again), twice per test: once
with requests in flight (their releases meet the dead actor), once between requests (so
that requests, not only releases, meet the outage in every ingress replica).

- ``fail_open: false`` (the default, fail closed): every request during the outage either
  succeeds or gets a clean 503 ``limiter_unavailable`` in the OpenAI error body with a
  Retry-After — never a 500, never a hang.
- ``fail_open: true``: every request succeeds; those admitted while the limiter was gone
  carry no rate-limit headers (unmetered).

Either way the actor comes back (a new actor under the same name) and limits work again:
a key with a budget of 2 requests per minute gets its third request refused with 429.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from serving.config.gateway import LimitsSettings
from tests.conftest import APP_NAME, Stack

BUSY = "sk-it-kill-busy-0123456789ab"  # metered (every request asks the limiter), never over it
TINY = "sk-it-kill-tiny-0123456789ab"  # 2 requests per minute
TINY_RPM = 2
THREADS = 4
MAX_REQUESTS_PER_THREAD = 300
REQUEST_TIMEOUT_S = 30.0  # a request slower than this is a hang
RECOVERY_STREAK = 16  # metered successes in a row after the kill: the limiter is back everywhere
RECOVERY_DEADLINE_S = 60.0
# The actor's name and namespace as the gateway builds them (serving.gateway.extension.build_limiter).
ACTOR_NAME = f"{LimitsSettings().actor_name}.{APP_NAME}"
ACTOR_NAMESPACE = LimitsSettings().actor_namespace

KEYS_YAML = f"keys:\n  - {{key: {BUSY}, tier: busy}}\n  - {{key: {TINY}, tier: tiny}}\n"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> Path:
    """The keys file: BUSY (tier busy) and TINY (tier tiny)."""
    path = tmp_path_factory.mktemp("limiter-kill") / "keys.yaml"
    path.write_text(KEYS_YAML)
    return path


def deploy_limited(deploy_stack: Callable[..., Stack], keys_file: Path, *, fail_open: bool) -> Stack:
    """The split tiny stack with keys and the shared limiter (default store), failing open or closed."""
    return deploy_stack(
        {
            "http": {"topology": "split", "ingress_replicas": 2},
            "gateway": {
                "auth": {"enabled": True, "keys_file": str(keys_file)},
                "limits": {
                    "tiers": {"default": {}, "busy": {"rpm": 100_000}, "tiny": {"rpm": TINY_RPM}},
                    "fail_open": fail_open,
                },
            },
        }
    )


@dataclass
class Outcome:
    """One request of the traffic: when it ended, and what came back."""

    ended: float
    status: int | None  # None: no answer (timeout, connection error)
    metered: bool = False  # the limiter answered: rate-limit headers present
    error: dict | None = None
    retry_after: str | None = None
    failure: str | None = None


def body(stack: Stack) -> dict:
    """A two-token chat completion body."""
    return {"model": stack.model, "messages": [{"role": "user", "content": "Say something."}], "max_tokens": 2}


def one_request(client: httpx.Client, stack: Stack, key: str) -> Outcome:
    """One chat completion with ``key``, as an ``Outcome`` (a transport error too)."""
    try:
        response = client.post(
            "/v1/chat/completions", json=body(stack), headers={"authorization": f"Bearer {key}"}
        )
    except httpx.HTTPError as exc:
        return Outcome(time.monotonic(), None, failure=repr(exc))
    error = None
    if response.status_code != 200:
        try:
            error = response.json().get("error")
        except ValueError:
            error = {"unparsable": response.text[:200]}
    return Outcome(
        ended=time.monotonic(),
        status=response.status_code,
        metered="x-ratelimit-limit-requests" in response.headers,
        error=error,
        retry_after=response.headers.get("retry-after"),
    )


class Traffic:
    """``THREADS`` threads sending one request after another with ``key`` until stopped (bounded)."""

    def __init__(self, stack: Stack, key: str) -> None:
        self.stack = stack
        self.key = key
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open = threading.Event()  # cleared: the threads wait between requests
        self._open.set()
        self._in_flight = 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.stack.base_url, timeout=REQUEST_TIMEOUT_S) as client:
            for _ in range(MAX_REQUESTS_PER_THREAD):
                while not self._open.wait(0.05):
                    if self._stop.is_set():
                        return
                with self._lock:
                    if self._stop.is_set() or not self._open.is_set():
                        continue
                    self._in_flight += 1
                outcome = one_request(client, self.stack, self.key)
                with self._lock:
                    self._in_flight -= 1
                    self.outcomes.append(outcome)

    def pause(self, timeout_s: float = REQUEST_TIMEOUT_S + 5) -> None:
        """Hold every thread between requests; return once none is in flight."""
        self._open.clear()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("requests still in flight after pausing the traffic")

    def resume(self) -> None:
        """Let the threads go on."""
        self._open.set()

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._open.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 10)
        assert not any(t.is_alive() for t in self._threads), "a traffic thread hung"

    def snapshot(self) -> list[Outcome]:
        """The outcomes so far, in the order they ended."""
        with self._lock:
            return list(self.outcomes)

    def wait_until(self, condition: Callable[[list[Outcome]], bool], timeout_s: float) -> bool:
        """Whether ``condition(outcomes)`` came true within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self.snapshot()):
                return True
            if not any(t.is_alive() for t in self._threads):
                return condition(self.snapshot())
            time.sleep(0.1)
        return False


def limiter_actor_id() -> str | None:
    """The id of the live limiter actor under its name, or None when there is none."""
    import ray

    try:
        return ray.get_actor(ACTOR_NAME, namespace=ACTOR_NAMESPACE)._actor_id.hex()
    except ValueError:
        return None


def metered_streak(outcomes: list[Outcome]) -> int:
    """How many of the latest outcomes in a row are metered successes."""
    streak = 0
    for outcome in reversed(outcomes):
        if outcome.status != 200 or not outcome.metered:
            break
        streak += 1
    return streak


def decisions(stack: Stack, decision: str) -> float:
    """The rate_limit policy's decisions counted as ``decision`` (e.g. failed_closed), all replicas."""
    with urllib.request.urlopen(stack.metrics_url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ray_serving_gateway_decisions_total{") and 'policy="rate_limit"' in line:
            if f'decision="{decision}"' in line and 'reason="store_unavailable"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def kill_under_traffic(stack: Stack, *, quiet: bool) -> list[Outcome]:
    """Traffic with BUSY; the limiter actor is killed once it answers; the outcomes after the kill.

    ``quiet=False``: killed with requests in flight (their releases meet a dead actor).
    ``quiet=True``: killed between requests (traffic held, then let go once the actor is
    gone), so the first limiter call of every ingress replica afterwards is an acquire
    on its stale handle: the outage is met by requests, not only by releases.
    """
    import ray

    with Traffic(stack, BUSY) as traffic:
        assert traffic.wait_until(lambda o: metered_streak(o) >= 8, 60), traffic.snapshot()[-5:]
        old_id = limiter_actor_id()
        assert old_id is not None, "the limiter actor is not running under its name"
        if quiet:
            traffic.pause()
            time.sleep(1.0)  # releases of the last requests settle
        ray.kill(ray.get_actor(ACTOR_NAME, namespace=ACTOR_NAMESPACE), no_restart=True)
        killed = time.monotonic()
        if quiet:
            deadline = killed + 30
            while limiter_actor_id() == old_id and time.monotonic() < deadline:
                time.sleep(0.05)  # the name is freed once Ray has the actor dead
            traffic.resume()

        def recovered(outcomes: list[Outcome]) -> bool:
            after = [o for o in outcomes if o.ended > killed]
            new_id = limiter_actor_id()
            return new_id is not None and new_id != old_id and metered_streak(after) >= RECOVERY_STREAK

        assert traffic.wait_until(recovered, RECOVERY_DEADLINE_S), "the limiter did not come back"
        new_id = limiter_actor_id()
        outcomes = traffic.snapshot()
    after = [o for o in outcomes if o.ended > killed]
    back = next(o.ended for o in after if o.status == 200 and o.metered)
    print(f"\n{'quiet' if quiet else 'loud'} kill of {ACTOR_NAME!r} ({old_id[:12]}), recreated as {new_id[:12]}: "
          f"{len(after)} requests after it, first metered success {back - killed:.2f}s after it; "
          f"503: {sum(o.status == 503 for o in after)}, unmetered 200: "
          f"{sum(o.status == 200 and not o.metered for o in after)}, other: "
          f"{[o.status for o in after if o.status not in (200, 503)]}")
    return after


def assert_failed_closed_cleanly(after: list[Outcome]) -> list[Outcome]:
    """Every request answered: a metered 200 or a clean 503 limiter_unavailable; the 503s."""
    assert not [o for o in after if o.status is None], "a request got no answer (hang or connection error)"
    assert {o.status for o in after} <= {200, 503}, [o for o in after if o.status not in (200, 503)]
    refused = [o for o in after if o.status == 503]
    for o in refused:
        assert o.error is not None and set(o.error) == {"message", "type", "param", "code"}, o
        assert o.error["code"] == "limiter_unavailable" and o.error["type"] == "server_error", o
        assert o.retry_after == "1", o
    assert all(o.metered for o in after if o.status == 200)  # nothing admitted unmetered
    return refused


def assert_tiny_budget_holds(stack: Stack) -> None:
    """Limits work again: TINY_RPM requests pass, the next one is a 429 with its headers."""
    with httpx.Client(base_url=stack.base_url, timeout=REQUEST_TIMEOUT_S) as client:
        outcomes = [one_request(client, stack, TINY) for _ in range(TINY_RPM + 1)]
    assert [o.status for o in outcomes] == [200] * TINY_RPM + [429], outcomes
    assert all(o.metered for o in outcomes)
    refused = outcomes[-1]
    assert refused.error is not None and refused.error["code"] == "rate_limit_exceeded"
    assert refused.error["type"] == "rate_limit_error" and refused.retry_after is not None


def wait_for_decisions(stack: Stack, decision: str, timeout_s: float = 30.0) -> float:
    """``decisions`` once it is above 0 (Ray exports every few seconds), or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = decisions(stack, decision)
        if count > 0 or time.monotonic() > deadline:
            return count
        time.sleep(1.0)


@pytest.mark.timeout(240)
def test_killed_limiter_fails_closed_with_clean_503s_then_limits_again(deploy_stack, keys_file) -> None:
    stack = deploy_limited(deploy_stack, keys_file, fail_open=False)
    assert stack.settings.gateway.limits.fail_open is False
    assert_failed_closed_cleanly(kill_under_traffic(stack, quiet=False))
    refused = assert_failed_closed_cleanly(kill_under_traffic(stack, quiet=True))
    assert refused, "no request met the limiter outage"
    assert_tiny_budget_holds(stack)
    assert wait_for_decisions(stack, "failed_closed") >= 1
    assert decisions(stack, "failed_open") == 0


@pytest.mark.timeout(240)
def test_killed_limiter_fails_open_when_configured_then_limits_again(deploy_stack, keys_file) -> None:
    stack = deploy_limited(deploy_stack, keys_file, fail_open=True)
    assert stack.settings.gateway.limits.fail_open is True
    for quiet in (False, True):
        after = kill_under_traffic(stack, quiet=quiet)
        assert after and all(o.status == 200 for o in after), [o for o in after if o.status != 200]
    assert [o for o in after if not o.metered], "no request met the limiter outage (admitted unmetered)"
    assert_tiny_budget_holds(stack)
    assert wait_for_decisions(stack, "failed_open") >= 1
