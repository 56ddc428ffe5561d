"""Sticky routing on real Ray Serve: the session-affinity router sends a session to one replica.

A light probe deployment (3 replicas that answer with their replica id) is served by
the session's Ray Serve as its own application, routed by the same router class the
model deployment uses when ``context.sticky_routing.enabled`` is on.
"""

from __future__ import annotations

import collections
import time

import httpx
import pytest

from serving.config.context import StickyRoutingSettings

APP = "sticky-probe"


@pytest.fixture(scope="module")
def probe_url(ray_serve_instance):
    from ray import serve

    @serve.deployment(
        num_replicas=3,
        ray_actor_options={"num_cpus": 0.05},
        request_router_config=StickyRoutingSettings(enabled=True, num_fallback_replicas=1).request_router_config(),
    )
    class Probe:
        async def __call__(self, request) -> str:
            return serve.get_replica_context().replica_id.unique_id

    serve.run(Probe.bind(), name=APP, route_prefix=f"/{APP}", blocking=False)
    url = f"http://127.0.0.1:{ray_serve_instance.http_port}/{APP}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200 and serve.status().applications[APP].status == "RUNNING":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    yield url
    serve.delete(APP)


def test_a_session_stays_on_one_replica_and_sessions_spread(probe_url: str) -> None:
    homes = {}
    with httpx.Client(timeout=10) as client:
        for session in range(12):
            seen = {client.get(probe_url, headers={"x-session-id": f"conv-{session}"}).text for _ in range(5)}
            assert len(seen) == 1, f"session conv-{session} went to {seen}"
            homes[session] = seen.pop()
        assert len(set(homes.values())) >= 2  # 12 sessions over 3 replicas
        without = collections.Counter(client.get(probe_url).text for _ in range(30))
    assert len(without) >= 2  # no session: load-balanced
