"""The Ray store's client side without Ray: per-call timeout, and the release a timeout sends."""

from __future__ import annotations

import concurrent.futures

import pytest

from serving.gateway.limits.buckets import Limits
from serving.gateway.limits.ray_store import RayLimiter
from serving.gateway.limits.store import LimiterUnavailable


class _Ref:
    def __init__(self, future: concurrent.futures.Future) -> None:
        self._future = future

    def future(self) -> concurrent.futures.Future:
        return self._future


class _Method:
    def __init__(self, actor: "_SlowActor", name: str) -> None:
        self.actor, self.name = actor, name

    def remote(self, *args):
        self.actor.calls.append((self.name, args))
        future: concurrent.futures.Future = concurrent.futures.Future()
        if self.name != "acquire":  # acquire never answers in time; everything else does
            future.set_result(None)
        return _Ref(future)


class _SlowActor:
    """Stands in for an actor handle whose acquire is stuck (busy or restarting actor)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str) -> _Method:
        return _Method(self, name)


async def test_acquire_timeout_sends_a_release_for_its_request_id():
    limiter = RayLimiter("unused", timeout_s=0.05, startup_timeout_s=0.05)
    actor = _SlowActor()
    limiter._actor = actor
    with pytest.raises(LimiterUnavailable):
        await limiter.acquire("k", Limits(rpm=5), 10, request_id="chatcmpl-7")
    assert [name for name, _ in actor.calls] == ["acquire", "release"]
    acquire_args, release_args = actor.calls[0][1], actor.calls[1][1]
    assert "chatcmpl-7" in acquire_args
    # The same request id, nothing charged, the request refunded: whatever the late acquire did is undone.
    assert release_args == ("k", "chatcmpl-7", 0, True)


async def test_acquire_without_request_id_still_gets_one_so_the_timeout_can_release():
    limiter = RayLimiter("unused", timeout_s=0.05, startup_timeout_s=0.05)
    actor = _SlowActor()
    limiter._actor = actor
    with pytest.raises(LimiterUnavailable):
        await limiter.acquire("k", Limits(rpm=5), 10)
    sent_id = actor.calls[0][1][3]
    assert isinstance(sent_id, str) and sent_id
    assert actor.calls[1][1][:2] == ("k", sent_id)


def test_actor_is_restartable_and_retries_idempotent_calls():
    from serving.gateway.limits import ray_store

    options = ray_store.actor_options("x", namespace="ns")
    assert options["max_restarts"] == -1 and options["lifetime"] == "detached"
    assert options["max_task_retries"] == -1  # safe: acquire is idempotent per request id


class _StartingActor(_SlowActor):
    """An actor handle whose process is still starting: the first answer takes ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def __getattr__(self, name: str) -> _Method:
        actor = self

        class _Delayed(_Method):
            def remote(self, *args):
                actor.calls.append((name, args))
                future: concurrent.futures.Future = concurrent.futures.Future()
                import threading

                def answer() -> None:
                    if not future.done():  # a caller that timed out cancelled it
                        future.set_result(f"{name}-answer")

                threading.Timer(actor.delay_s, answer).start()
                return _Ref(future)

        return _Delayed(self, name)


async def test_first_call_waits_for_the_actor_to_start_later_calls_do_not():
    """A cold actor (its worker process starting) must not turn the first requests into 503s."""
    limiter = RayLimiter("unused", timeout_s=0.05, startup_timeout_s=5.0)
    limiter._actor = _StartingActor(delay_s=0.3)
    assert await limiter.acquire("k", Limits(rpm=5), 1, request_id="first") == "acquire-answer"
    with pytest.raises(LimiterUnavailable):  # once it answered, the normal timeout applies
        await limiter.acquire("k", Limits(rpm=5), 1, request_id="second")
