"""A short real load test against the stack (real Ray Serve + vLLM, tiny model).

Checks that the CLI produces a complete report and that its numbers are sane for a
real server: every request succeeds, token counts come from the server's usage,
TTFT < end-to-end, throughput and goodput are consistent, streams are not buffered,
and multi-turn users really send their growing history.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loadtests.cli import main
from tests.conftest import Stack


def run_cli(stack: Stack, out: Path, *args: str) -> dict:
    code = main(["run", *args, "--url", stack.api_base, "--model", stack.model,
                 "--out", str(out), "--quiet", "--warmup", "1"])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


def test_smoke_report_against_the_stack(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    summary = run_cli(stack, out, "smoke", "--concurrency", "1,4", "--max-requests", "8")
    assert [s["label"] for s in summary["steps"]] == ["c=1", "c=4"]
    for step in summary["steps"]:
        m = step["metrics"]
        assert step["requests"]["total"] == 8 and step["requests"]["failed"] == 0, step
        assert step["tokens_from_usage"] == 8  # the stack sends usage in the stream
        assert 1 <= m["output_tokens"]["min"] and m["output_tokens"]["max"] <= 16
        assert m["prompt_tokens"]["min"] > 0
        assert 0 < m["ttft_ms"]["p50"] < m["e2e_ms"]["p50"]
        assert m["ttft_ms"]["p50"] <= m["ttft_ms"]["p99"] <= m["ttft_ms"]["max"]
        assert m["itl_ms"]["count"] > 0 and m["itl_ms"]["p50"] > 0
        assert 0 < step["request_throughput"] and step["goodput"] <= step["request_throughput"]
        assert step["output_token_throughput"] > step["request_throughput"]
        assert not any("SSE buffering" in w for w in step["warnings"]), step["warnings"]
    report = (out / "report.md").read_text()
    assert "| c=1 |" in report and "| c=4 |" in report
    for name in ("latency_vs_load.png", "throughput_vs_load.png", "ttft_distribution.png",
                 "requests.csv", "steps.csv"):
        assert (out / name).stat().st_size > 0


def test_multi_turn_users_send_their_growing_history(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "multi"
    summary = run_cli(stack, out, "multi_turn", "--concurrency", "2", "--max-requests", "6",
                      "--max-tokens", "12")
    assert summary["steps"][0]["requests"]["failed"] == 0
    with (out / "requests.csv").open() as f:
        rows = [r for r in csv.DictReader(f)]
    by_user: dict[str, list[dict]] = {}
    for row in rows:
        by_user.setdefault(row["user"], []).append(row)
    grew = 0
    for user_rows in by_user.values():
        for before, after in zip(user_rows, user_rows[1:]):
            if int(after["turn"]) == int(before["turn"]) + 1:
                # the next turn resends the system prompt, earlier turns and the reply
                assert int(after["prompt_tokens"]) > int(before["prompt_tokens"])
                grew += 1
    assert grew >= 2
