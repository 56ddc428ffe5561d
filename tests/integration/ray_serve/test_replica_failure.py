"""A model replica killed under steady load: clean errors in flight, recovery without an operator.

Two clients send short chat completions (streamed and whole, alternating) for at least
STEADY_S seconds; after KILL_AT_S the model deployment's replica actor is killed with
``ray.kill`` (as a crash would). Serve's controller replaces it by itself. Then:

- requests in flight at the kill end with a clean error — a 5xx with an OpenAI error
  body, or a stream that ends with an SSE error event — or succeed; none hangs;
- requests succeed again after the new replica is up (the "kill window" is from the
  kill to the first success of a request started after it);
- outside the kill window, fewer than 1 % of all requests fail.

The split topology is used: its ingress deployment outlives the model replica and
answers for it — a replica that dies mid-request is a 503 / SSE error event, and while
no model replica is running a request is refused with 503 within ~2 s instead of being
held by Serve's router until the replacement has loaded the model. (In the colocated
topology the process that would write the error body is the one that died: only Serve's
proxy is left to answer.) Every request has a timeout; the load stops by itself.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable

import httpx
import pytest

from tests.conftest import APP_NAME, Stack

CLIENTS = 2
STEADY_S = 60.0  # the steady load lasts at least this long...
KILL_AT_S = 15.0
AFTER_RECOVERY_S = 15.0  # ...and at least this long after recovery
HARD_DEADLINE_S = 360.0  # the load stops here whatever happened
REQUEST_TIMEOUT_S = 30.0
MAX_TOKENS = 8
MODEL_DEPLOYMENT = "model"


@dataclass(frozen=True)
class Result:
    """One request of the load: when it ran and how it ended."""

    start: float
    end: float
    stream: bool
    outcome: str  # ok | clean_error | failed
    detail: str = ""


def _classify_whole(r: httpx.Response) -> tuple[str, str]:
    if r.status_code == 200:
        return ("ok", "") if r.json().get("choices") else ("failed", "200 without choices")
    try:
        error = r.json()["error"]
    except Exception:
        return "failed", f"{r.status_code} not an OpenAI error body: {r.text[:120]!r}"
    if r.status_code >= 500 and set(error) == {"message", "type", "param", "code"}:
        return "clean_error", f"{r.status_code} {error['code']}"
    return "failed", f"{r.status_code} {error.get('code')}"


def _classify_stream(status: int, events: list[str], body: str) -> tuple[str, str]:
    if status != 200:
        try:
            error = json.loads(body)["error"]
        except Exception:
            return "failed", f"{status} not an OpenAI error body: {body[:120]!r}"
        return ("clean_error" if status >= 500 else "failed"), f"{status} {error.get('code')}"
    errors = [e for e in events if e.startswith("{") and '"error"' in e and json.loads(e).get("error")]
    if errors:
        return "clean_error", f"SSE error event {json.loads(errors[0])['error'].get('code')}"
    if events and events[-1] == "[DONE]":
        return "ok", ""
    return "failed", f"stream cut without an error event after {len(events)} events"


def one_request(client: httpx.Client, stack: Stack, stream: bool) -> Result:
    """One chat completion with a deadline on every phase; never raises."""
    body = {
        "model": stack.model,
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }
    start = time.monotonic()
    try:
        if not stream:
            outcome, detail = _classify_whole(client.post(f"{stack.api_base}/chat/completions", json=body))
        else:
            with client.stream("POST", f"{stack.api_base}/chat/completions", json=body) as r:
                text = ""
                events: list[str] = []
                for line in r.iter_lines():
                    text += line + "\n"
                    if line.startswith("data: "):
                        events.append(line[len("data: "):])
                outcome, detail = _classify_stream(r.status_code, events, text)
    except httpx.TimeoutException as exc:
        outcome, detail = "failed", f"timeout ({type(exc).__name__}): a hang"
    except httpx.HTTPError as exc:
        outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
    return Result(start, time.monotonic(), stream, outcome, detail)


def model_replica_names() -> list[str]:
    """The names of the model deployment's live replica actors (Serve's naming)."""
    import ray

    prefix = f"SERVE_REPLICA::{APP_NAME}#{MODEL_DEPLOYMENT}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))


def kill_model_replica() -> str:
    """``ray.kill`` the one model replica (restart allowed: Serve replaces it); its name."""
    import ray

    [name] = model_replica_names()
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=False)
    return name


def run_load(stack: Stack, on_tick: Callable[[float, list[Result]], bool]) -> list[Result]:
    """CLIENTS threads in a loop until ``on_tick(elapsed, results)`` says stop (or the hard deadline)."""
    results: list[Result] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(index: int) -> None:
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=10.0)
        with httpx.Client(timeout=timeout) as client:
            n = index
            while not stop.is_set():
                result = one_request(client, stack, stream=n % 2 == 0)
                n += 1
                with lock:
                    results.append(result)
                if result.outcome != "ok":
                    time.sleep(0.2)  # a failing server is not hammered

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        while time.monotonic() - started < HARD_DEADLINE_S:
            with lock:
                snapshot = list(results)
            if on_tick(time.monotonic() - started, snapshot):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(REQUEST_TIMEOUT_S + 15)
    assert not any(t.is_alive() for t in threads), "a client thread did not stop"
    return results


@pytest.fixture
def split_stack(deploy_stack: Callable[..., Stack]) -> Stack:
    return deploy_stack({"http": {"topology": "split"}})


@pytest.mark.timeout(HARD_DEADLINE_S + 240)
def test_killing_the_model_replica_under_load_fails_only_what_was_in_flight(split_stack: Stack) -> None:
    stack = split_stack
    before = model_replica_names()
    assert len(before) == 1, before
    state: dict[str, float | str | None] = {"kill_at": None, "killed": None, "recovered_at": None}

    def on_tick(elapsed: float, results: list[Result]) -> bool:
        if state["kill_at"] is None and elapsed >= KILL_AT_S:
            state["kill_at"] = time.monotonic()
            state["killed"] = kill_model_replica()
        kill_at = state["kill_at"]
        if kill_at is not None and state["recovered_at"] is None:
            ok_after = [r.end for r in results if r.start > kill_at and r.outcome == "ok"]  # type: ignore[operator]
            if ok_after:
                state["recovered_at"] = min(ok_after)
        recovered = state["recovered_at"]
        return (
            recovered is not None
            and elapsed >= STEADY_S
            and time.monotonic() - recovered >= AFTER_RECOVERY_S  # type: ignore[operator]
        )

    results = run_load(stack, on_tick)
    kill_at, recovered_at = state["kill_at"], state["recovered_at"]
    assert kill_at is not None, "the replica was never killed"
    assert recovered_at is not None, (
        f"no request succeeded within {HARD_DEADLINE_S}s after the kill: "
        f"{[r.detail for r in results if r.start > kill_at][-5:]}"  # type: ignore[operator]
    )
    after = model_replica_names()
    assert after and after != before, f"the replica was not replaced: {before} -> {after}"

    timeline = [
        (round(r.start - kill_at, 2), round(r.end - kill_at, 2), r.stream, r.outcome, r.detail)  # type: ignore[operator]
        for r in results
        if r.end > kill_at - 2 and r.start < recovered_at + 2  # type: ignore[operator]
    ]
    in_flight = [r for r in results if r.start < kill_at < r.end]  # type: ignore[operator]
    unclean = [r for r in in_flight if r.outcome == "failed"]
    assert not unclean, (
        f"in-flight requests without a clean error: {[r.detail for r in unclean]}; "
        f"recovered after {recovered_at - kill_at:.1f}s; timeline (s from the kill): {timeline}"  # type: ignore[operator]
    )
    outside = [r for r in results if r.end < kill_at or r.start > recovered_at]  # type: ignore[operator]
    failed_outside = [r for r in outside if r.outcome != "ok"]
    assert len(results) >= 100, f"too little load to judge: {len(results)} requests"
    assert len(failed_outside) < 0.01 * len(results), [r.detail for r in failed_outside][:10]
    assert httpx.get(f"{stack.base_url}/ready", timeout=30).status_code == 200
    window = recovered_at - kill_at  # type: ignore[operator]
    print(
        f"\nrequests {len(results)}, in flight at the kill {len(in_flight)} "
        f"({sum(r.outcome == 'clean_error' for r in in_flight)} clean errors), kill window {window:.1f}s, "
        f"failed outside it {len(failed_outside)}, in it {sum(r.outcome != 'ok' for r in results) - len(failed_outside)}"
    )
