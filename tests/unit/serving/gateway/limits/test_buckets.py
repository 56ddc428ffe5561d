"""The limiting algorithm: exact bursts, refill, atomic reservations, real-usage correction."""

from __future__ import annotations

import pytest

from serving.gateway.limits.buckets import (
    CONCURRENCY,
    REQUESTS,
    TOKENS,
    TOO_LARGE,
    LimiterCore,
    Limits,
)

LEASE = 900.0


@pytest.fixture
def core(clock):
    return LimiterCore(clock=clock)


def test_rpm_burst_gets_exactly_n_then_denied_with_retry(core, clock):
    limits = Limits(rpm=3)
    decisions = [core.acquire("k", limits, 0, LEASE) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.requests.remaining for d in decisions[:3]] == [2, 1, 0]
    denied = decisions[3]
    assert denied.reason == REQUESTS
    # 3 rpm refills one request every 20 s.
    assert denied.retry_after_s == pytest.approx(20.0)
    assert denied.requests.limit == 3 and denied.requests.remaining == 0
    assert denied.requests.reset_s == pytest.approx(60.0)


def test_refill_allows_one_more_after_retry_after(core, clock):
    limits = Limits(rpm=3)
    for _ in range(3):
        core.acquire("k", limits, 0, LEASE)
    clock.advance(19.9)
    assert not core.acquire("k", limits, 0, LEASE).allowed
    clock.advance(0.2)
    assert core.acquire("k", limits, 0, LEASE).allowed
    assert not core.acquire("k", limits, 0, LEASE).allowed


def test_keys_are_independent(core):
    limits = Limits(rpm=1)
    assert core.acquire("a", limits, 0, LEASE).allowed
    assert not core.acquire("a", limits, 0, LEASE).allowed
    assert core.acquire("b", limits, 0, LEASE).allowed


def test_tokens_reserved_then_corrected_by_real_usage(core):
    limits = Limits(tpm=1000)
    first = core.acquire("k", limits, 600, LEASE)
    assert first.allowed and first.tokens.remaining == 400
    # 600 reserved, 600 more do not fit ...
    denied = core.acquire("k", limits, 600, LEASE)
    assert not denied.allowed and denied.reason == TOKENS
    assert denied.retry_after_s == pytest.approx((600 - 400) / (1000 / 60))
    # ... until the first request reports that it used only 100.
    core.release("k", first.reservation, 100)
    second = core.acquire("k", limits, 600, LEASE)
    assert second.allowed and second.tokens.remaining == 300


def test_usage_above_reservation_is_charged(core):
    limits = Limits(tpm=1000)
    first = core.acquire("k", limits, 100, LEASE)
    core.release("k", first.reservation, 700)
    assert core.acquire("k", limits, 0, LEASE).tokens.remaining == 300


def test_refund_gives_the_request_back(core):
    limits = Limits(rpm=2, tpm=100)
    d = core.acquire("k", limits, 10, LEASE)
    core.release("k", d.reservation, 0, refund_request=True)
    again = core.acquire("k", limits, 10, LEASE)
    assert again.requests.remaining == 1 and again.tokens.remaining == 90


def test_request_larger_than_tpm_is_too_large(core):
    decision = core.acquire("k", Limits(tpm=100), 101, LEASE)
    assert not decision.allowed and decision.reason == TOO_LARGE


def test_concurrency_slots_are_released(core):
    limits = Limits(max_concurrent=2)
    a = core.acquire("k", limits, 0, LEASE)
    b = core.acquire("k", limits, 0, LEASE)
    c = core.acquire("k", limits, 0, LEASE)
    assert a.allowed and b.allowed and not c.allowed and c.reason == CONCURRENCY
    assert c.retry_after_s >= 1
    core.release("k", a.reservation, 0)
    assert core.acquire("k", limits, 0, LEASE).allowed
    assert core.in_flight("k") == 2


def test_lost_release_is_reclaimed_after_lease(core, clock):
    limits = Limits(max_concurrent=1)
    assert core.acquire("k", limits, 0, lease_s=30).allowed
    assert not core.acquire("k", limits, 0, lease_s=30).allowed
    clock.advance(31)
    assert core.acquire("k", limits, 0, lease_s=30).allowed


def test_release_twice_or_unknown_is_harmless(core):
    limits = Limits(tpm=100, max_concurrent=1)
    d = core.acquire("k", limits, 50, LEASE)
    core.release("k", d.reservation, 10)
    core.release("k", d.reservation, 10)
    core.release("other", "nope", 10)
    assert core.acquire("k", limits, 0, LEASE).tokens.remaining == 90


def test_denied_request_consumes_nothing(core):
    limits = Limits(rpm=10, tpm=100)
    assert not core.acquire("k", limits, 500, LEASE).allowed
    d = core.acquire("k", limits, 10, LEASE)
    assert d.requests.remaining == 9 and d.tokens.remaining == 90


def test_changed_limit_keeps_usage(core):
    core.acquire("k", Limits(rpm=10), 0, LEASE)
    core.acquire("k", Limits(rpm=10), 0, LEASE)
    d = core.acquire("k", Limits(rpm=5), 0, LEASE)
    assert d.requests.limit == 5 and d.requests.remaining == 2


def test_idle_full_keys_are_swept(clock):
    core = LimiterCore(clock=clock, sweep_every=5)
    released = core.acquire("released", Limits(rpm=60), 0, LEASE)
    core.release("released", released.reservation, 0)
    core.acquire("expired", Limits(rpm=60), 0, lease_s=10)
    core.acquire("held", Limits(rpm=60), 0, LEASE)
    clock.advance(61)
    core.acquire("k-last", Limits(rpm=60), 0, LEASE)  # 4 calls: no sweep yet
    assert len(core) == 4
    core.acquire("k-last", Limits(rpm=60), 0, LEASE)  # 5th call sweeps first
    assert len(core) == 2  # "held" still has a live lease, "k-last" is in use


def test_acquire_is_idempotent_per_request_id(core):
    """A retried acquire (client timeout, Ray task retry) must not reserve twice."""
    limits = Limits(rpm=10, tpm=1000, max_concurrent=2)
    first = core.acquire("k", limits, 300, LEASE, request_id="chatcmpl-1")
    again = core.acquire("k", limits, 300, LEASE, request_id="chatcmpl-1")
    assert first.allowed and again.allowed
    assert first.reservation == again.reservation == "chatcmpl-1"
    assert again.requests.remaining == 9 and again.tokens.remaining == 700
    assert core.in_flight("k") == 1
    core.release("k", "chatcmpl-1", 100)
    assert core.in_flight("k") == 0
    assert core.acquire("k", limits, 0, LEASE).tokens.remaining == 900


def test_release_that_overtakes_its_acquire_cancels_it(core):
    """A timed-out caller releases by request id; if that lands first, the late acquire reserves nothing."""
    limits = Limits(rpm=10, tpm=1000, max_concurrent=1)
    core.release("k", "chatcmpl-2", 0, refund_request=True)
    late = core.acquire("k", limits, 300, LEASE, request_id="chatcmpl-2")
    assert not late.allowed and late.reservation is None
    assert core.in_flight("k") == 0
    fresh = core.acquire("k", limits, 300, LEASE, request_id="chatcmpl-3")
    assert fresh.allowed and fresh.requests.remaining == 9 and fresh.tokens.remaining == 700
