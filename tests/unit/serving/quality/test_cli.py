"""The quality CLI against a real HTTP server: the production app on the fake engine."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import uvicorn

from tests.unit.apps import build_app
from serving.config.settings import Settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.quality.__main__ import main
from serving.quality.prompts import load_prompt_set
from serving.quality.results import QualityRun

REPLY = ("The", " capital", " of", " France", " is", " Paris", ".")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The app built by the production builder, served by uvicorn on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = build_app(Settings(), FakeEngine(FakeEngineConfig(reply=REPLY, max_model_len=4096)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_run_scores_answers_and_a_run_agrees_exactly_with_itself(base_url: str, tmp_path: Path, capsys) -> None:
    saved = tmp_path / "run.json"
    assert main(["run", "--base-url", base_url, "--save", str(saved), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # The fake engine says the same sentence to every question: only the France case is right.
    assert summary["correct"] == 1 and summary["wrong"] == [c for c in summary["wrong"] if c != "capital-france"]
    assert summary["errors"] == 0 and summary["latency_p50_s"] > 0
    run = QualityRun.load(saved)
    assert run.greedy and run.answers[0].tokens[0].token == "The"
    assert main(["run", "--base-url", base_url, "--reference", str(saved), "--min-exact", str(len(run.answers))]) == 0
    text = capsys.readouterr().out
    assert f"exact {len(run.answers)}/{len(run.answers)}" in text


def test_gates_fail_with_exit_1_and_say_why(base_url: str, tmp_path: Path, capsys) -> None:
    assert main(["run", "--base-url", base_url, "--min-accuracy", "0.5"]) == 1
    assert "gate failed: accuracy" in capsys.readouterr().err


def test_served_defaults_send_only_model_and_messages(base_url: str, capsys) -> None:
    assert main(["run", "--base-url", base_url, "--served-defaults", "--repeat", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cases"] == 2 * len(load_prompt_set().cases) and summary["correct"] == 2
    assert main(["run", "--base-url", base_url, "--served-defaults", "--reference", "x.json"]) == 2


def test_an_unreachable_server_is_a_usage_error_not_a_traceback(capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["run", "--base-url", f"http://127.0.0.1:{port}/v1"]) == 2
    assert "error:" in capsys.readouterr().err
