"""Result files: summary.json, CSVs, the Markdown report and the PNG plots."""

from __future__ import annotations

import csv
import json

from loadtests.report import render_report, write_results
from loadtests.runner import run_scenario

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_a_run_writes_every_output(tmp_path, make_scenario) -> None:
    scenario = make_scenario(["#script ttft_ms=10 itl_ms=2 tokens=4", "#script status=500"],
                             load={"concurrency": [1, 2], "max_requests": 8},
                             slo={"ttft_ms": 500, "itl_ms": 50})
    run = await run_scenario(scenario)
    out = tmp_path / "result"
    report = write_results(run, out)

    summary = json.loads((out / "summary.json").read_text())
    assert [s["label"] for s in summary["steps"]] == ["c=1", "c=2"]
    assert summary["model"] == "scripted" and summary["machine"]["cores"]
    assert "api_key_env" not in summary["scenario"]["target"]

    with (out / "requests.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    failed = [r for r in rows if r["error_kind"]]
    assert len(failed) == sum(s["requests"]["failed"] for s in summary["steps"])
    assert all(r["status"] == "500" and r["ttft_ms"] == "" for r in failed)
    assert "prompt" not in rows[0] and "text" not in rows[0]  # no prompt or reply text

    with (out / "steps.csv").open() as f:
        steps = list(csv.DictReader(f))
    assert [s["step"] for s in steps] == ["c=1", "c=2"]
    assert float(steps[0]["ttft_p50_ms"]) == summary["steps"][0]["metrics"]["ttft_ms"]["p50"]

    text = report.read_text()
    assert text.startswith("# Load test `test`")
    assert "| c=1 |" in text and "| c=2 |" in text and "## Errors" in text and "http_500" in text
    for name in ("latency_vs_load.png", "throughput_vs_load.png", "ttft_distribution.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
        assert f"]({name})" in text


async def test_headline_names_the_highest_holding_load(tmp_path, make_scenario) -> None:
    scenario = make_scenario(["#script ttft_ms=10 tokens=2"],
                             load={"concurrency": [1, 2], "max_requests": 4},
                             slo={"ttft_ms": 1000})
    report = write_results(await run_scenario(scenario), tmp_path)
    assert "Highest load within the SLO: 2 users" in report.read_text()


async def test_report_is_rerendered_from_the_files(tmp_path, make_scenario) -> None:
    scenario = make_scenario(["#script tokens=2"], load={"max_requests": 2},
                             slo={"ttft_ms": 1})  # nothing meets 1 ms
    write_results(await run_scenario(scenario), tmp_path)
    (tmp_path / "report.md").unlink()
    (tmp_path / "ttft_distribution.png").unlink()
    text = render_report(tmp_path).read_text()
    assert "No swept load held the SLO" in text
    assert (tmp_path / "ttft_distribution.png").is_file()
