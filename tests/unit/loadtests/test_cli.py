"""The serving-loadtest command line: run, report, list, and the refusal of remote targets."""

from __future__ import annotations

import json

import pytest

from loadtests.cli import main


def test_run_writes_a_report_and_prints_the_headline(server, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["run", "smoke", "--url", server.url, "--out", str(out), "--quiet",
                 "--concurrency", "1,2", "--max-requests", "3", "--warmup", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Highest load within the SLO: 2 users" in printed and str(out) in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["target"]["base_url"] == server.url
    assert [s["requests"]["total"] for s in summary["steps"]] == [3, 3]
    assert len(server.server.log) == 6


def test_rate_flags_switch_to_open_loop(server, tmp_path) -> None:
    out = tmp_path / "out"
    assert main(["run", "smoke", "--url", server.url, "--out", str(out), "--quiet",
                 "--rates", "50", "--max-requests", "4", "--warmup", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["load_unit"] == "sessions/s" and summary["steps"][0]["label"] == "r=50/s"
    back = tmp_path / "back"  # and --concurrency turns a rate scenario back into users
    assert main(["run", "rate_sweep", "--url", server.url, "--out", str(back), "--quiet",
                 "--concurrency", "2", "--max-requests", "2", "--warmup", "0"]) == 0
    assert json.loads((back / "summary.json").read_text())["load_unit"] == "users"


@pytest.mark.parametrize("extra", [[], ["--allow-remote"]])
def test_remote_targets_need_url_and_allow_remote(tmp_path, capsys, extra) -> None:
    scenario = tmp_path / "remote.yaml"
    scenario.write_text("name: r\ntarget:\n  base_url: http://10.9.9.9:8000/v1\n")
    assert main(["run", str(scenario), "--out", str(tmp_path / "o"), *extra]) == 2
    assert not (tmp_path / "o").exists()


def test_remote_url_without_allow_remote_is_refused(tmp_path, capsys) -> None:
    code = main(["run", "smoke", "--url", "http://10.9.9.9:8000/v1", "--out", str(tmp_path)])
    assert code == 2
    assert "refusing to send load" in capsys.readouterr().err


def test_unreachable_target_is_a_clear_error(tmp_path, capsys) -> None:
    code = main(["run", "smoke", "--url", "http://127.0.0.1:9/v1", "--quiet",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "is the server running?" in capsys.readouterr().err


def test_list_names_the_packaged_scenarios(capsys) -> None:
    assert main(["list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"capacity", "multi_turn", "rate_sweep", "smoke"} <= set(names)
