"""The gateway settings section: strict, validated, reachable from the settings tree and env."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.config.settings import load_settings
from serving.gateway.drain import drain_deployment_options
from serving.config.gateway import GatewaySettings, TierLimits


def test_defaults_are_open_and_unlimited():
    gw = GatewaySettings()
    assert not gw.auth.enabled
    assert all(t.is_unlimited() for t in gw.limits.tiers.values())


@pytest.mark.parametrize(
    "data",
    [
        {"auth": {"enabled": True}},  # no keys file
        {"limits": {"tiers": {"pro": {}}}},  # default tier missing
        {"limits": {"tiers": {"default": {"rpm": 0}}}},
        {"hygiene": {"max_body_byte": 10}},  # typo
    ],
)
def test_invalid_sections_are_errors(data):
    with pytest.raises(ValidationError):
        GatewaySettings.model_validate(data)


def test_environment_overrides_reach_the_section(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVING_GATEWAY__AUTH__ENABLED", "true")
    monkeypatch.setenv("SERVING_GATEWAY__AUTH__KEYS_FILE", str(tmp_path / "keys.yaml"))
    monkeypatch.setenv("SERVING_GATEWAY__ADMISSION__MAX_WAITING", "7")
    settings = load_settings({})
    assert settings.gateway.auth.enabled and settings.gateway.admission.max_waiting == 7


def test_override_replaces_only_what_it_sets():
    base = TierLimits(rpm=10, tpm=100)
    override = TierLimits.model_validate({"tpm": 5})
    assert base.merged(override) == TierLimits(rpm=10, tpm=5)
    assert base.merged(None) is base


def test_drain_options_for_serve():
    options = drain_deployment_options(GatewaySettings().drain)
    assert set(options) == {"graceful_shutdown_timeout_s", "graceful_shutdown_wait_loop_s"}
