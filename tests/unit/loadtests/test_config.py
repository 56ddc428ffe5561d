"""Scenario files: validation, packaged scenarios, overrides and the loopback rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from loadtests.config import SCENARIO_DIR, Scenario, load_scenario
from loadtests.workloads import load_workload


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_packaged_scenario_is_valid_and_bounded(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.load.max_requests > 0 and scenario.load.duration_s > 0
    assert scenario.target.base_url.startswith("http://127.0.0.1")
    load_workload(scenario.workload.name)  # its workload exists and is valid
    assert scenario.slo.is_set()


def test_scenarios_are_found_by_name() -> None:
    assert load_scenario("smoke").name == "smoke"
    with pytest.raises(FileNotFoundError, match="capacity"):
        load_scenario("no-such-scenario")


def test_unknown_keys_are_errors_with_their_path(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nload:\n  concurency: [1, 2]\n")
    with pytest.raises(ValidationError, match="load.concurency"):
        load_scenario(path)


def test_overrides_merge_into_nested_sections() -> None:
    scenario = load_scenario("capacity", {"load": {"concurrency": [3]}, "slo": {"ttft_ms": 5}})
    assert scenario.load.concurrency == [3]
    assert scenario.load.max_requests == 128  # untouched keys stay
    assert scenario.slo.ttft_ms == 5 and scenario.slo.itl_ms == 100


def test_rate_mode_needs_rates() -> None:
    with pytest.raises(ValidationError, match="rates"):
        Scenario.model_validate({"name": "x", "load": {"mode": "rate"}})
    assert Scenario.model_validate(
        {"name": "x", "load": {"mode": "rate", "rates": [0.5, 2]}}
    ).load.step_values() == [0.5, 2.0]


def test_a_scenario_file_cannot_target_another_host(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntarget:\n  base_url: http://10.1.2.3:8000/v1\n")
    with pytest.raises(ValidationError, match="refusing to send load"):
        load_scenario(path)
    assert load_scenario(path, allow_remote=True).target.base_url == "http://10.1.2.3:8000/v1"
