"""The benchmark runner end to end, with scripted servers as targets (fast, deterministic)."""

from __future__ import annotations

import json
import socket

import yaml

from loadtests.benchmark.config import load_benchmark
from loadtests.benchmark.runner import round_order, run_benchmark
from loadtests.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scripted_target(name: str, ttft_ms: int) -> dict:
    return {"name": name, "port": free_port(), "ready_path": "/health",
            "command": ["{python}", "-m", "loadtests.scripted_server", "--port", "{port}",
                        "--ttft-ms", str(ttft_ms), "--itl-ms", "4", "--tokens", "6"]}


def bench_file(tmp_path, targets: list[dict], repeats: int = 2) -> str:
    data = {"name": "t", "scenario": "smoke", "model": str(tmp_path), "model_name": "scripted",
            "repeats": repeats, "settle_s": 0, "ready_timeout_s": 30, "stop_timeout_s": 5,
            "overrides": {"load": {"concurrency": [1, 2], "max_requests": 4,
                                   "warmup_requests": 0}},
            "targets": targets}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_rounds_rotate_the_target_order(tmp_path) -> None:
    config = load_benchmark(bench_file(tmp_path, [scripted_target(n, 10) for n in "abc"]))
    orders = [[t.name for t in round_order(config.targets, r, True)] for r in range(4)]
    assert orders == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert [t.name for t in round_order(config.targets, 1, False)] == list("abc")


def test_benchmark_compares_targets_and_reports_a_failed_one(tmp_path) -> None:
    broken = {"name": "broken", "port": free_port(),
              "command": ["{python}", "-c", "raise ImportError('no engine for {model_name}')"]}
    config = load_benchmark(bench_file(
        tmp_path, [scripted_target("fast", 20), scripted_target("slow", 200), broken]))
    out = tmp_path / "out"
    path = run_benchmark(config, out, log=lambda *_: None)
    data = json.loads((out / "comparison.json").read_text())

    step = data["comparison"]["steps"]["c=1"]
    assert set(step) == {"fast", "slow"} and step["fast"]["rounds"] == 2
    # TTFT is the script's plus a small overhead: the ratio is near (but under) 200/20
    ratio = step["slow"]["ratio"]["ttft_p50"]
    assert 3 < ratio <= 10, ratio
    assert step["fast"]["ttft_p50"]["min"] >= 20 and step["slow"]["ttft_p50"]["min"] >= 200
    assert step["slow"]["ratio"]["request_tps"] < 1 and step["fast"]["ratio"]["ttft_p50"] == 1

    assert "no engine for scripted" in data["failures"]["broken"]
    assert [r["target"] for r in data["rounds"]] == ["fast", "slow", "broken", "slow", "fast"]
    assert (out / "fast" / "round-2" / "report.md").is_file()
    text = path.read_text()
    assert "## Targets that did not run" in text and "| slow |" in text
    assert (out / "comparison.png").read_bytes().startswith(b"\x89PNG")
    assert "](comparison.png)" in text
    assert data["machine"]["cores"] and data["model"]["name"] == "scripted"


def test_benchmark_subcommand_runs_a_selected_target(tmp_path, capsys) -> None:
    path = bench_file(tmp_path, [scripted_target("only", 10), scripted_target("other", 10)], 1)
    out = tmp_path / "out"
    assert main(["benchmark", path, "--targets", "only", "--max-requests", "2",
                 "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "comparison.json").read_text())
    assert [r["target"] for r in data["rounds"]] == ["only"]
    assert data["comparison"]["steps"]["c=1"]["only"]["requests"] == 2
    capsys.readouterr()
    assert main(["benchmark", "--config", path, "--targets", "nope", "--out", str(out)]) == 2
    assert "unknown targets ['nope']" in capsys.readouterr().err
