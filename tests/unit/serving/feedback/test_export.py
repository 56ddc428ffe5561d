"""The export CLI: JSONL, CSV and chat (fine-tuning) formats, filters, missing databases."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.feedback.export import main
from serving.feedback.store import Conversation, FeedbackStore
from tests.unit.serving.feedback.conftest import feedback, record


@pytest.fixture
def filled(db_url: str) -> str:
    store = FeedbackStore(db_url, flush_interval_s=0.02).start()
    store.record_response(
        record("chatcmpl-1", model="a"),
        Conversation([{"role": "user", "content": "hi [REDACTED:EMAIL]"}], None, ["hello"]),
    )
    store.record_response(record("chatcmpl-2", model="b"))
    store.add_feedback(feedback("chatcmpl-1", thumbs="up", score=5, comment='says "hi", ok', tags=("good", "fast")))
    store.add_feedback(feedback("chatcmpl-2", thumbs="down", score=None))
    store.close()
    return db_url


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_jsonl(filled: str, capsys) -> None:
    code, out, err = run(["--database-url", filled], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and "exported 2" in err
    assert [r["response_id"] for r in rows] == ["chatcmpl-1", "chatcmpl-2"]
    assert rows[0]["tags"] == ["good", "fast"] and rows[0]["model"] == "a" and "messages" not in rows[0]


def test_csv_to_file_with_conversations(filled: str, tmp_path: Path, capsys) -> None:
    target = tmp_path / "out.csv"
    code, _, _ = run(["--database-url", filled, "--format", "csv", "--output", str(target), "--with-conversations"], capsys)
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert code == 0 and len(rows) == 2
    assert rows[0]["tags"] == "good;fast" and rows[0]["comment"] == 'says "hi", ok'
    assert json.loads(rows[0]["messages"]) == [{"role": "user", "content": "hi [REDACTED:EMAIL]"}]
    assert rows[1]["messages"] == ""


def test_chat_format_for_fine_tuning(filled: str, capsys) -> None:
    code, out, _ = run(["--database-url", filled, "--format", "chat", "--with-conversations", "--thumbs", "up"], capsys)
    [line] = out.splitlines()
    record_ = json.loads(line)
    assert record_["messages"][-1] == {"role": "assistant", "content": "hello"}
    assert record_["metadata"]["score"] == 5
    assert run(["--database-url", filled, "--format", "chat"], capsys)[0] == 2  # needs --with-conversations


def test_filters(filled: str, capsys) -> None:
    _, out, _ = run(["--database-url", filled, "--model", "b"], capsys)
    assert [json.loads(line)["response_id"] for line in out.splitlines()] == ["chatcmpl-2"]
    _, out, _ = run(["--database-url", filled, "--since", "2999-01-01"], capsys)
    assert out == ""


def test_missing_database_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code, _, err = run(["--database-url", f"sqlite:///{tmp_path}/nope.db"], capsys)
    assert code == 1 and "no feedback database" in err and not (tmp_path / "nope.db").exists()


def test_settings_file_names_the_database(filled: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"feedback:\n  database_url: {filled}\n")
    code, out, _ = run(["--config", str(config)], capsys)
    assert code == 0 and len(out.splitlines()) == 2


def test_runs_as_a_module(filled: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.feedback.export", "--database-url", filled, "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[4],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("feedback_id,response_id")


FORMULAS = ('=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1")


@pytest.fixture
def formulas(db_url: str) -> str:
    store = FeedbackStore(db_url, flush_interval_s=0.02).start()
    for i, comment in enumerate(FORMULAS):
        store.record_response(record(f"chatcmpl-{i}", model="-m" if i == 0 else "m"))
        store.add_feedback(feedback(f"chatcmpl-{i}", comment=comment))
    store.close()
    return db_url


def test_csv_neutralises_spreadsheet_formulas_jsonl_stays_raw(formulas: str, capsys) -> None:
    _, out, _ = run(["--database-url", formulas, "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["comment"] for r in rows] == ["'" + c for c in FORMULAS]
    assert rows[0]["comment"] == "'=HYPERLINK(\"http://x\",\"y\")" and rows[0]["model"] == "'-m"
    assert rows[0]["score"] == "" and float(rows[0]["latency_s"]) == 0.25  # numbers are left alone
    _, out, _ = run(["--database-url", formulas], capsys)
    assert [json.loads(line)["comment"] for line in out.splitlines()] == list(FORMULAS)
