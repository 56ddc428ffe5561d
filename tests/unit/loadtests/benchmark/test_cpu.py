"""Server CPU by process role: roles from process titles, real /proc readings, the table."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from loadtests.benchmark.compare import compare, markdown
from loadtests.benchmark.cpu import cpu_by_role, per_thousand_tokens, role_of, snapshot, step_meter
from loadtests.benchmark.process import start_target, stop_target, target_pids


@pytest.mark.parametrize(("title", "leader", "role"), [
    ("VLLM::EngineCore", False, "engine_core"),
    ("VLLM::Worker", False, "engine_worker"),
    ("ray::ServeReplica:default:ModelServer", False, "replica"),
    ("ray::ProxyActor", False, "proxy"),
    ("/usr/sbin/haproxy -f /tmp/ray/haproxy.cfg", False, "proxy"),
    ("ray::ServeController", False, "controller"),
    ("/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=x", False, "raylet"),
    ("/venv/lib/python3.11/site-packages/ray/dashboard/agent.py --node-ip-address=x", False, "ray_agents"),
    ("python -m vllm.entrypoints.openai.api_server --model m", True, "server"),
    ("python -m vllm.entrypoints.openai.api_server --model m", False, "other"),
])
def test_roles_come_from_process_titles(title: str, leader: bool, role: str) -> None:
    assert role_of(title, leader=leader) == role


BURN = """
import os, subprocess, sys, time
child = "import sys, time; open(sys.argv[1] + '/child', 'w').close(); time.sleep(60)"
subprocess.Popen([sys.executable, "-c", child, sys.argv[1]], start_new_session=True)
while not os.path.exists(sys.argv[1] + "/go"):  # burn only once the meter runs
    time.sleep(0.01)
end = time.process_time() + 0.4
while time.process_time() < end:
    pass
open(sys.argv[1] + "/done", "w").close()
time.sleep(60)
"""


def wait_for(check, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_busy_process_is_measured_and_an_idle_one_is_not(tmp_path) -> None:
    # The leader burns 0.4 s of CPU while the meter runs; its child (it left the group) only sleeps.
    target = start_target("burn", [sys.executable, "-c", BURN, str(tmp_path)], {}, tmp_path / "b.log", tmp_path)
    try:
        wait_for(lambda: (tmp_path / "child").exists())  # the child has started (its start-up costs CPU)
        assert len(target_pids(target)) == 2  # the child that left the group is counted
        finish = step_meter(lambda: target_pids(target), target.pid)()
        (tmp_path / "go").touch()
        wait_for(lambda: (tmp_path / "done").exists())
        spent = finish()["cpu_s"]
    finally:
        stop_target(target, 5)
    assert 0.35 <= spent["server"] <= 0.8
    assert spent.get("other", 0.0) < 0.05


def test_a_process_that_ended_is_dropped_and_a_new_one_counts_whole() -> None:
    before = {(1, "10"): ("replica", 5.0), (2, "11"): ("proxy", 1.0)}
    after = {(1, "10"): ("replica", 7.5), (3, "12"): ("proxy", 0.5)}
    assert cpu_by_role(before, after) == {"replica": 2.5, "proxy": 0.5}


def test_snapshot_of_a_gone_process_is_empty() -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    assert snapshot([int(done.stdout)], leader=0) == {}


def step(tps: float, cpu: dict[str, float] | None, duration: float = 10.0) -> dict:
    data = {"label": "c=32", "duration_s": duration, "output_token_throughput": tps,
            "metrics": {"ttft_ms": {"p50": 1.0, "p99": 2.0}, "itl_ms": {}, "tpot_ms": {}},
            "goodput": 1.0, "request_throughput": 1.0,
            "requests": {"failed": 0, "total": 1}, "buffering": {"bursty": 0, "eligible": 1}}
    if cpu is not None:
        data["server"] = {"cpu_s": cpu}
    return data


def test_cpu_per_thousand_tokens_and_the_table() -> None:
    # 100 tok/s for 10 s = 1,000 tokens; 4 s engine + 1 s replica + 0.5 s proxy
    assert per_thousand_tokens(step(100, {"engine_core": 4.0, "replica": 1.0, "proxy": 0.5})) == {
        "engine_core": 4000.0, "replica": 1000.0, "proxy": 500.0, "total": 5500.0}
    assert per_thousand_tokens(step(100, None)) is None
    assert per_thousand_tokens(step(0, {"engine_core": 1.0})) is None
    runs = {"vllm": [{"highest_holding": 1, "steps": [step(100, {"engine_core": 4.0, "server": 1.0})]}],
            "stack": [{"highest_holding": 1, "steps": [step(50, {"engine_core": 3.0, "proxy": 1.0})]},
                      {"highest_holding": 1, "steps": [step(50, {"engine_core": 5.0, "proxy": 1.0})]}]}
    table = compare(runs, "vllm")
    cpu = table["steps"]["c=32"]["stack"]["cpu"]
    assert cpu["engine_core"]["median"] == pytest.approx(8000.0)  # 4 s median / 500 tokens
    assert cpu["cores"]["median"] == pytest.approx(0.5)
    text = markdown(table, title="T", context=[], failures={})
    assert "| target | engine core | proxy | server | total | cores |" in text
    assert "| stack | 8000 | 2000 | - | 10000 | 0.50 |" in text
    assert "| vllm | 4000 | - | 1000 | 5000 | 0.50 |" in text
