"""The comparison: medians and spread over rounds, ratios to the baseline, Markdown."""

from __future__ import annotations

import pytest

from loadtests.benchmark.compare import compare, markdown, spread, step_loads


def summary(ttft_p50: float, tps: float, label: str = "c=1", holding: float | None = 1):
    dist = {"p50": ttft_p50, "p99": ttft_p50 * 2}
    return {"highest_holding": holding, "steps": [{
        "label": label,
        "metrics": {"ttft_ms": dist, "itl_ms": {"p50": 10.0, "p99": 20.0},
                    "tpot_ms": {"p50": 11.0}},
        "output_token_throughput": tps, "goodput": tps / 10, "request_throughput": tps / 10,
        "requests": {"failed": 1, "total": 10}, "buffering": {"bursty": 0, "eligible": 9},
    }]}


def test_spread_is_median_min_max() -> None:
    assert spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert spread([None]) is None


def test_medians_spread_and_ratios() -> None:
    runs = {"base": [summary(100, 50), summary(120, 40), summary(110, 60)],
            "other": [summary(200, 25), summary(260, 20)]}
    table = compare(runs, "base")
    base, other = table["steps"]["c=1"]["base"], table["steps"]["c=1"]["other"]
    assert base["ttft_p50"] == {"median": 110, "min": 100, "max": 120, "n": 3}
    assert other["ttft_p50"]["median"] == 230
    assert other["ratio"]["ttft_p50"] == pytest.approx(230 / 110)
    assert other["ratio"]["output_tps"] == pytest.approx(22.5 / 50)
    assert base["ratio"]["ttft_p50"] == pytest.approx(1.0)
    assert other["rounds"] == 2 and other["failed"] == 2 and other["requests"] == 20
    assert table["highest_holding"] == {"base": [1, 1, 1], "other": [1, 1]}


def test_markdown_shows_spread_ratios_and_failures() -> None:
    runs = {"base": [summary(100, 50), summary(120, 40)], "other": [summary(200, 25)]}
    text = markdown(compare(runs, "base"), title="T", context=["- ctx"],
                    failures={"ray": "exited with code 1 | ImportError: x"})
    assert "| base | 2 | 110 [100 - 120] |" in text
    assert "| other | 1 | 200 |" in text
    assert "| other | 1.82x |" in text
    assert "**ray**: exited with code 1 | ImportError: x" in text
    assert "errors" in text and "| 2/20 |" in text


def test_step_loads_come_from_the_runs_or_else_the_labels() -> None:
    run = summary(100, 50, label="c=16")
    run["steps"][0]["value"] = 16.0
    assert step_loads(compare({"a": [run]}, "a")) == {"c=16": 16.0}
    older = {"steps": {"c=4": {}, "r=2.5/s": {}, "odd": {}}}  # comparison.json without "loads"
    assert step_loads(older) == {"c=4": 4.0, "r=2.5/s": 2.5, "odd": None}


def test_markdown_shows_the_plot_when_given() -> None:
    table = compare({"base": [summary(100, 50)]}, "base")
    assert "![TTFT and output tokens/s vs load](comparison.png)" in markdown(
        table, title="T", context=[], failures={}, image="comparison.png")
    assert "![" not in markdown(table, title="T", context=[], failures={})
