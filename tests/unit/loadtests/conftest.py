"""Fixtures for the load generator's tests: a scripted server with known delays.

The server (loadtests.scripted_server) runs on 127.0.0.1 in its own thread and event
loop, so its timing does not depend on the load generator's loop. Prompts carry
``#script ttft_ms=.. itl_ms=.. tokens=..`` directives; the server logs what it served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtests.config import Scenario, load_scenario
from loadtests.scripted_server import Script, ScriptedServer
from tests.unit.loadtests.background import serving_in_thread


@dataclass
class RunningServer:
    """A scripted server running in a background thread."""

    server: ScriptedServer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.server.log.clear()
        self.server.max_in_flight = 0


@pytest.fixture(scope="module")
def scripted() -> Iterator[RunningServer]:
    """A scripted server for the module (log cleared per test by ``server``)."""
    server = ScriptedServer(Script(ttft_ms=20, itl_ms=5, tokens=8))
    with serving_in_thread(lambda: server.start(0)) as port:
        yield RunningServer(server, port)


@pytest.fixture
def server(scripted: RunningServer) -> RunningServer:
    """The module's scripted server with an empty log."""
    scripted.reset()
    return scripted


@pytest.fixture
def make_scenario(tmp_path: Path, server: RunningServer) -> Callable[..., Scenario]:
    """Build a scenario against the scripted server from prompts or conversations."""

    def build(
        prompts: list[str] | None = None,
        conversations: list[list[str]] | None = None,
        *,
        think: tuple[float, float] = (0.0, 0.0),
        system_prompt: str | None = None,
        endpoint: str = "chat",
        **sections: Any,
    ) -> Scenario:
        workload = {"name": "test", "endpoint": endpoint, "max_tokens": 16,
                    "system_prompt": system_prompt,
                    "think_time": {"min_s": think[0], "max_s": think[1]}}
        if conversations:
            workload["conversations"] = conversations
        else:
            workload["prompts"] = prompts or ["hello"]
        workload_file = tmp_path / "workload.yaml"
        workload_file.write_text(yaml.safe_dump(workload))
        data: dict[str, Any] = {
            "name": "test",
            "target": {"base_url": server.url, "model": "scripted", "timeout_s": 10},
            "workload": {"name": str(workload_file)},
            "load": {"mode": "concurrency", "concurrency": [1], "max_requests": 10,
                     "duration_s": 10, "drain_timeout_s": 5},
        }
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        scenario_file = tmp_path / "scenario.yaml"
        scenario_file.write_text(yaml.safe_dump(data))
        return load_scenario(scenario_file)

    return build
