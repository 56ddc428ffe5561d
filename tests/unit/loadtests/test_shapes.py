"""Load shapes against the scripted server: concurrency, bounds, ramp-up, Poisson arrivals."""

from __future__ import annotations

import random

from loadtests.runner import run_scenario

# Lower bounds are exact (nothing happens early); upper bounds are generous, because a
# shared 2-core CI box can stall this process for tens of milliseconds at any time.
EARLY_S = 0.005
LATE_S = 0.15


def max_overlap(results) -> int:
    """Most requests in flight at once, from the client's own start/end times."""
    edges = sorted([(r.start, 1) for r in results] + [(r.end, -1) for r in results])
    peak = current = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


async def test_closed_loop_keeps_exactly_n_requests_in_flight(server, make_scenario) -> None:
    scenario = make_scenario(["#script ttft_ms=50 itl_ms=10 tokens=6"],
                             load={"concurrency": [4], "max_requests": 12})
    run = await run_scenario(scenario)
    outcome = run.outcomes[0]
    assert len(outcome.results) == 12 and all(r.ok for r in outcome.results)
    assert max_overlap(outcome.results) == 4
    assert 0.3 <= outcome.duration < 0.3 + 3 * LATE_S  # three rounds of ~100 ms
    assert sorted({r.user for r in outcome.results}) == [0, 1, 2, 3]


async def test_a_step_stops_issuing_at_its_duration(server, make_scenario) -> None:
    scenario = make_scenario(["#script ttft_ms=50 itl_ms=10 tokens=6"],
                             load={"concurrency": [2], "max_requests": 1000, "duration_s": 0.35})
    outcome = (await run_scenario(scenario)).outcomes[0]
    starts = [r.start - outcome.started for r in outcome.results]
    assert max(starts) < 0.35  # nothing is issued after the deadline
    assert 2 <= len(starts) <= 8  # 2 users x at most one request per ~100 ms
    assert all(r.ok for r in outcome.results)  # in-flight requests were allowed to finish
    assert 0.35 <= outcome.issuing_ended - outcome.started < 0.35 + LATE_S


async def test_requests_still_running_after_the_drain_timeout_are_cancelled(
    server, make_scenario
) -> None:
    scenario = make_scenario(["#script ttft_ms=1000"],
                             load={"duration_s": 0.1, "drain_timeout_s": 0.2})
    outcome = (await run_scenario(scenario)).outcomes[0]
    [result] = outcome.results
    assert result.error_kind == "cancelled" and not result.ok
    assert 0.3 <= outcome.duration < 0.3 + LATE_S


async def test_ramp_up_starts_users_evenly(server, make_scenario) -> None:
    scenario = make_scenario(["#script ttft_ms=10 itl_ms=1 tokens=2"],
                             load={"concurrency": [4], "ramp_up_s": 0.4, "duration_s": 0.45,
                                   "max_requests": 1000})
    outcome = (await run_scenario(scenario)).outcomes[0]
    first = {}
    for r in outcome.results:
        first.setdefault(r.user, r.start - outcome.started)
    for user in range(4):
        assert 0.1 * user - EARLY_S <= first[user] < 0.1 * user + LATE_S
    assert [first[u] for u in range(4)] == sorted(first.values())


async def test_open_loop_follows_the_seeded_poisson_schedule(server, make_scenario) -> None:
    rate, seed, n = 40.0, 3, 15
    scenario = make_scenario(["#script ttft_ms=30 itl_ms=5 tokens=3"], seed=seed,
                             load={"mode": "rate", "rates": [rate], "max_requests": n})
    outcome = (await run_scenario(scenario)).outcomes[0]
    rng, t, expected = random.Random(seed), 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        expected.append(t)
    starts = [r.start - outcome.started for r in outcome.results]
    assert len(starts) == n
    lateness = [got - want for got, want in zip(starts, expected)]
    assert min(lateness) >= -EARLY_S  # never before its scheduled arrival
    # the schedule is absolute: a stall delays some arrivals, the rest stay on time
    assert sorted(lateness)[n // 2] < 0.02
    # open loop: arrivals do not wait for earlier requests (they overlap)
    assert max_overlap(outcome.results) > 1


async def test_open_loop_concurrency_cap(server, make_scenario) -> None:
    scenario = make_scenario(["#script ttft_ms=150 tokens=1"],
                             load={"mode": "rate", "rates": [200], "max_requests": 12,
                                   "max_concurrency": 3})
    outcome = (await run_scenario(scenario)).outcomes[0]
    assert len(outcome.results) == 12 and all(r.ok for r in outcome.results)
    assert max_overlap(outcome.results) == 3


async def test_multi_turn_users_keep_history_and_think_between_turns(
    server, make_scenario
) -> None:
    scenario = make_scenario(
        conversations=[["#script tokens=3 first", "#script tokens=2 second", "third"]],
        system_prompt="shared system prompt", think=(0.1, 0.1),
        load={"concurrency": [1], "max_requests": 3},
    )
    outcome = (await run_scenario(scenario)).outcomes[0]
    log = server.server.log
    assert [s.messages for s in log] == [2, 4, 6]
    assert log[1].history[0] == {"role": "system", "content": "shared system prompt"}
    assert log[1].history[2] == {"role": "assistant", "content": log[0].text}
    assert log[2].history[4] == {"role": "assistant", "content": log[1].text}
    assert [r.turn for r in outcome.results] == [0, 1, 2]
    first, second = outcome.results[:2]
    assert 0.1 - EARLY_S <= second.start - first.end < 0.1 + LATE_S


async def test_a_failed_turn_ends_the_conversation(server, make_scenario) -> None:
    scenario = make_scenario(conversations=[["ok", "#script status=500", "never sent"]],
                             load={"concurrency": [1], "max_requests": 3})
    outcome = (await run_scenario(scenario)).outcomes[0]
    assert [r.turn for r in outcome.results] == [0, 1, 0]  # a new conversation after the error
    assert not any("never sent" in str(s.history) for s in server.server.log)
