"""The audit log: redacted JSON lines, file mode, one file per day, retention."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

from serving.privacy.audit import AuditLog

DAY = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_write_redacts_text_fields_only(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, retention_days=7, clock=Clock(DAY))
    log.write(
        {
            "response_id": "chatcmpl-1",
            "messages": [{"role": "user", "content": "I am bob@example.com, card 4111 1111 1111 1111"}],
            "completions": ["call me at +1 415 555 0100"],
            "key_id": "abc12345",
        },
        text_fields=("messages", "completions"),
    )
    [record] = lines(log.path_for(DAY.date()))
    assert record["messages"] == [{"role": "user", "content": "I am [REDACTED:EMAIL], card [REDACTED:CARD]"}]
    assert record["completions"] == ["call me at [REDACTED:PHONE]"]
    assert record["key_id"] == "abc12345"
    assert record["ts"].startswith("2026-03-10T12:00")
    assert stat.S_IMODE(log.path_for(DAY.date()).stat().st_mode) == 0o600


def test_long_text_is_cut(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, retention_days=7, max_text_chars=10, clock=Clock(DAY))
    log.write({"prompt": "x" * 50}, text_fields=("prompt",))
    [record] = lines(log.path_for(DAY.date()))
    assert record["prompt"].startswith("x" * 10) and "truncated" in record["prompt"] and len(record["prompt"]) < 30


def test_one_file_per_day_and_old_files_are_deleted(tmp_path: Path) -> None:
    clock = Clock(DAY)
    old = tmp_path / "audit-2026-02-01.jsonl"
    old.write_text("{}\n")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep")
    log = AuditLog(tmp_path, retention_days=7, clock=clock)
    assert not old.exists() and unrelated.exists()  # pruned when opened

    log.write({"n": 1})
    clock.now = DAY + dt.timedelta(days=1)
    log.write({"n": 2})
    first, second = log.path_for(DAY.date()), log.path_for(clock.now.date())
    assert [r["n"] for r in lines(first)] == [1]
    assert [r["n"] for r in lines(second)] == [2]

    clock.now = DAY + dt.timedelta(days=8)  # the day change prunes the first file
    log.write({"n": 3})
    assert not first.exists() and second.exists()
