"""The benchmark's comparison plot: drawn from compare() output, readable back, gaps tolerated."""

from __future__ import annotations

import json

import matplotlib.image as mpimg

from loadtests.benchmark.compare import compare
from loadtests.cli import main
from loadtests.plots import COMPARISON_PNG, comparison_vs_load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def summary(ttft_p50: float, tps: float, loads=(1, 16, 32)) -> dict:
    """A run's summary.json as the load generator writes it (the keys compare() reads)."""
    steps = []
    for users in loads:
        steps.append({
            "label": f"c={users}", "mode": "concurrency", "value": float(users),
            "metrics": {"ttft_ms": {"p50": ttft_p50 * users, "p99": ttft_p50 * users * 2},
                        "itl_ms": {"p50": 30.0, "p99": 45.0}, "tpot_ms": {"p50": 29.0}},
            "output_token_throughput": tps * users, "goodput": users / 10,
            "request_throughput": users / 10,
            "requests": {"failed": 0, "total": 20}, "buffering": {"bursty": 0, "eligible": 20},
        })
    return {"highest_holding": 16, "steps": steps}


def comparison_json(runs: dict, baseline: str, failures: dict | None = None) -> dict:
    """comparison.json's parts the plot reads, around compare()'s table."""
    return {
        "name": "synthetic", "model": {"name": "tiny"},
        "scenario": {"name": "short_chat", "load": {"mode": "concurrency"},
                     "slo": {"ttft_ms": 1000.0}},
        "config": {"targets": [{"name": name} for name in runs]},
        "failures": failures or {}, "comparison": compare(runs, baseline),
    }


def test_comparison_plot_is_a_readable_two_panel_png(tmp_path) -> None:
    runs = {"vllm": [summary(70, 30), summary(75, 31), summary(72, 29)],
            "stack": [summary(370, 28), summary(390, 27), summary(380, 29)]}
    path = comparison_vs_load(comparison_json(runs, "vllm"), tmp_path / COMPARISON_PNG)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size > 20_000  # drawn lines and text, not an empty canvas
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == (520, 1200)  # figsize (12, 5.2) at 100 dpi
    assert pixels.std() > 0.05


def test_missing_values_leave_gaps_and_do_not_crash(tmp_path) -> None:
    short = summary(400, 25, loads=(1, 16))  # no c=32 step
    short["steps"][1]["metrics"]["ttft_ms"] = {}  # no TTFT at c=16 (every request failed)
    runs = {"base": [summary(70, 30)], "short": [short]}
    data = comparison_json(runs, "base", failures={"ray": "exited with code 1"})
    assert "short" not in data["comparison"]["steps"]["c=32"]
    assert data["comparison"]["steps"]["c=16"]["short"]["ttft_p50"] is None
    path = comparison_vs_load(data, tmp_path / "gaps.png")
    assert mpimg.imread(path).shape[:2] == (520, 1200)


def test_a_single_step_draws(tmp_path) -> None:
    data = comparison_json({"only": [summary(100, 20, loads=(1,))]}, "only")
    assert comparison_vs_load(data, tmp_path / "one.png").read_bytes().startswith(PNG_MAGIC)


def test_an_older_rate_comparison_without_loads_draws(tmp_path) -> None:
    run = summary(100, 20, loads=(0.5, 1, 2))
    for step in run["steps"]:
        step["label"], step["mode"] = f"r={step['value']:g}/s", "rate"
    data = comparison_json({"only": [run]}, "only")
    data["scenario"]["load"]["mode"] = "rate"
    del data["comparison"]["loads"]  # written before compare() kept the load values
    assert comparison_vs_load(data, tmp_path / "rate.png").read_bytes().startswith(PNG_MAGIC)


def test_benchmark_plot_command_redraws_from_comparison_json(tmp_path, capsys) -> None:
    runs = {"vllm": [summary(70, 30)], "stack": [summary(370, 28)]}
    (tmp_path / "comparison.json").write_text(json.dumps(comparison_json(runs, "vllm")))
    assert main(["benchmark-plot", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"plot: {tmp_path / COMPARISON_PNG}"
    assert (tmp_path / COMPARISON_PNG).read_bytes().startswith(PNG_MAGIC)
    assert main(["benchmark-plot", str(tmp_path / "missing")]) == 2
