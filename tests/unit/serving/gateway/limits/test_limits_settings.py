"""The limits settings: store choice, Redis URL, fail closed by default."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.config.settings import load_settings
from serving.gateway.extension import build_limiter
from serving.gateway.limits.store import LocalLimiter
from serving.config.gateway import LimitsSettings


def test_defaults_fail_closed_and_pick_the_store_automatically():
    limits = LimitsSettings()
    assert limits.fail_open is False
    assert limits.store == "auto"


@pytest.mark.parametrize("store", ["auto", "memory", "ray_actor", "redis"])
def test_store_options(store):
    extra = {"redis_url": "redis://127.0.0.1:6379/0"} if store == "redis" else {}
    assert LimitsSettings(store=store, **extra).store == store


@pytest.mark.parametrize("legacy,name", [("local", "memory"), ("ray", "ray_actor")])
def test_earlier_store_names_still_load(legacy, name):
    assert LimitsSettings(store=legacy).store == name


def test_redis_store_needs_a_url():
    with pytest.raises(ValidationError, match="redis_url"):
        LimitsSettings(store="redis")
    with pytest.raises(ValidationError):
        LimitsSettings(store="redis", redis_url="http://not-redis:80")


def test_env_overrides_reach_the_limits_section(monkeypatch):
    monkeypatch.setenv("SERVING_GATEWAY__LIMITS__STORE", "redis")
    monkeypatch.setenv("SERVING_GATEWAY__LIMITS__REDIS_URL", "rediss://:secret@redis.example:6380/2")
    monkeypatch.setenv("SERVING_GATEWAY__LIMITS__FAIL_OPEN", "true")
    limits = load_settings({}).gateway.limits
    assert (limits.store, limits.fail_open) == ("redis", True)
    assert "secret" not in repr(limits)  # the URL's password is not shown


def test_memory_store_without_ray():
    assert isinstance(build_limiter(LimitsSettings(store="memory")), LocalLimiter)
