"""Session affinity: rendezvous ranking and the router's choice of replicas."""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.context.routing import SessionAffinityRouter, affinity_rank
from serving.config.context import ROUTER_CLASS, StickyRoutingSettings


def test_rank_is_stable_and_spreads_sessions() -> None:
    replicas = [f"replica-{i}" for i in range(4)]
    homes = [affinity_rank(f"session-{n}", replicas)[0] for n in range(400)]
    assert homes == [affinity_rank(f"session-{n}", list(reversed(replicas)))[0] for n in range(400)]
    counts = {r: homes.count(r) for r in replicas}
    assert min(counts.values()) > 60  # roughly even (100 each)


def test_removing_a_replica_moves_only_its_sessions() -> None:
    replicas = [f"replica-{i}" for i in range(4)]
    before = {n: affinity_rank(f"s{n}", replicas)[0] for n in range(400)}
    after = {n: affinity_rank(f"s{n}", replicas[:3])[0] for n in range(400)}
    moved = [n for n in before if before[n] != after[n]]
    assert moved and all(before[n] == "replica-3" for n in moved)


@dataclass
class FakeReplicaId:
    unique_id: str


@dataclass
class FakeReplica:
    replica_id: FakeReplicaId


@dataclass
class FakeRoutingContext:
    should_backoff: bool = False


@dataclass
class FakeMetadata:
    session_id: str = ""


@dataclass
class FakePending:
    metadata: FakeMetadata
    routing_context: FakeRoutingContext = field(default_factory=FakeRoutingContext)


def router(fallbacks: int = 1) -> SessionAffinityRouter:
    r = SessionAffinityRouter.__new__(SessionAffinityRouter)  # choose_replicas needs no Serve state
    r.initialize_state(num_fallback_replicas=fallbacks)
    return r


async def test_session_requests_rank_home_then_fallbacks() -> None:
    replicas = [FakeReplica(FakeReplicaId(f"r{i}")) for i in range(4)]
    pending = FakePending(FakeMetadata(session_id="conversation-42"))
    ranks = await router(fallbacks=2).choose_replicas(replicas, pending)
    expected = affinity_rank("conversation-42", [f"r{i}" for i in range(4)])[:3]
    assert [[r.replica_id.unique_id for r in rank] for rank in ranks] == [[e] for e in expected]
    assert pending.routing_context.should_backoff
    again = await router(fallbacks=2).choose_replicas(list(reversed(replicas)), FakePending(FakeMetadata("conversation-42")))
    assert again[0][0].replica_id.unique_id == expected[0]


async def test_requests_without_session_get_two_random_choices() -> None:
    replicas = [FakeReplica(FakeReplicaId(f"r{i}")) for i in range(4)]
    [rank] = await router().choose_replicas(replicas, FakePending(FakeMetadata()))
    assert len(rank) == 2 and len({r.replica_id.unique_id for r in rank}) == 2
    assert await router().choose_replicas([], FakePending(FakeMetadata("s"))) == []


def test_settings_render_serve_router_config() -> None:
    assert StickyRoutingSettings().request_router_config() is None
    config = StickyRoutingSettings(enabled=True, num_fallback_replicas=2).request_router_config()
    assert config == {"request_router_class": ROUTER_CLASS, "request_router_kwargs": {"num_fallback_replicas": 2}}
    from ray.serve.config import RequestRouterConfig

    assert RequestRouterConfig(**config).request_router_class == ROUTER_CLASS  # importable, accepted by Serve
