"""``serving run``'s local Ray: what it asks ray.init and Serve for (no Ray started)."""

from __future__ import annotations

import sys
import types

import pytest

from serving.cli import start_ray
from serving.config.settings import Settings


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> dict:
    calls: dict = {}
    ray = types.ModuleType("ray")
    serve = types.ModuleType("ray.serve")
    ray.init = lambda **kw: calls.update(init=kw)  # type: ignore[attr-defined]
    serve.start = lambda **kw: calls.update(serve=kw)  # type: ignore[attr-defined]
    ray.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.serve", serve)
    return calls


def test_ray_workers_run_at_the_configured_niceness_else_rays_own(fake_ray: dict) -> None:
    start_ray(Settings())
    assert fake_ray["init"]["_system_config"] == {}
    fake_ray.clear()
    start_ray(Settings(ray={"worker_niceness": 0}))
    assert fake_ray["init"]["_system_config"] == {"worker_niceness": 0}


def test_niceness_outside_the_unix_range_is_refused() -> None:
    with pytest.raises(ValueError):
        Settings(ray={"worker_niceness": 20})
