"""Export feedback joined with response metadata, for offline analysis or fine-tuning.

    python -m serving.feedback.export --config deploy/serve/serve_config.yaml \
        --format jsonl --output feedback.jsonl [--since 2026-01-01] [--model M] [--thumbs up]
    python -m serving.feedback.export --database-url sqlite:////data/feedback.sqlite3 --format csv
    python -m serving.feedback.export ... --format chat --with-conversations   # fine-tuning JSONL

Formats: ``jsonl`` (one object per feedback, values as stored), ``csv`` (tags joined
by ``;``, text columns JSON-encoded, a cell starting with ``= + - @``, tab or CR prefixed
with ``'`` so spreadsheets show it as text instead of running it), ``chat``
(``{"messages": [..., assistant answer], "metadata"}`` per feedback whose conversation
was stored: needs ``--with-conversations``).
Conversation text exists only if the deployment opted in (``feedback.store_conversations``).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from serving.feedback.db import create_db_engine
from serving.feedback.store import FeedbackStore

CSV_FIELDS = (
    "feedback_id",
    "response_id",
    "feedback_created_at",
    "thumbs",
    "score",
    "comment",
    "tags",
    "model",
    "model_version",
    "route",
    "stream",
    "response_created_at",
    "latency_s",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "moderation",
    "key_id",
)
TEXT_FIELDS = ("messages", "prompt", "completions")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _date(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving.feedback.export", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--database-url", help="SQLAlchemy URL of the feedback database.")
    source.add_argument("--config", help="A settings YAML / Serve config: its feedback.database_url is used.")
    parser.add_argument("--format", choices=("jsonl", "csv", "chat"), default="jsonl")
    parser.add_argument("--output", default="-", help="File to write ('-': stdout).")
    parser.add_argument("--since", type=_date, help="Feedback created at or after (ISO date/time, UTC).")
    parser.add_argument("--until", type=_date, help="Feedback created before (ISO date/time, UTC).")
    parser.add_argument("--model", help="Only responses of this model id.")
    parser.add_argument("--thumbs", choices=("up", "down"), help="Only thumbs up (or down).")
    parser.add_argument(
        "--with-conversations", action="store_true", help="Include the stored (redacted) conversation text."
    )
    return parser.parse_args(argv)


def database_url(args: argparse.Namespace) -> str:
    """The URL given, or the one in the settings (file and SERVING_ environment)."""
    if args.database_url:
        return args.database_url
    from serving.config.settings import load_settings

    return load_settings(path=args.config).feedback.database_url


def missing_database(url: str) -> str | None:
    """Why ``url`` has no feedback to export (no file, no tables), or None."""
    shown = make_url(url).render_as_string(hide_password=True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").expanduser().is_file():
        return f"no feedback database at {shown}"
    engine = create_db_engine(url)
    try:
        if not inspect(engine).has_table("feedback"):
            return f"{shown} has no feedback tables (the serving stack creates them on start)"
    finally:
        engine.dispose()
    return None


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def csv_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO, *, with_text: bool) -> int:
    fields = CSV_FIELDS + (TEXT_FIELDS if with_text else ())
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        flat = dict(row, tags=";".join(row["tags"]))
        for name in TEXT_FIELDS:
            if name in flat and flat[name] is not None:
                flat[name] = json.dumps(flat[name], ensure_ascii=False)
        writer.writerow({name: csv_cell(value) for name, value in flat.items()})
        count += 1
    return count


def write_chat(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Fine-tuning records: the conversation plus the rated answer (first choice)."""
    count = 0
    for row in rows:
        if not row.get("messages") or not row.get("completions"):
            continue
        record = {
            "messages": list(row["messages"]) + [{"role": "assistant", "content": row["completions"][0]}],
            "metadata": {k: row[k] for k in ("response_id", "thumbs", "score", "tags", "model", "model_version")},
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    """Run the export; prints how many rows were written to stderr."""
    args = parse_args(argv)
    if args.format == "chat" and not args.with_conversations:
        print("--format chat needs --with-conversations", file=sys.stderr)
        return 2
    url = database_url(args)
    problem = missing_database(url)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    store = FeedbackStore(url)
    try:
        rows = store.iter_feedback(
            since=args.since,
            until=args.until,
            model=args.model,
            thumbs=args.thumbs,
            with_conversations=args.with_conversations,
        )
        out = sys.stdout if args.output == "-" else open(args.output, "w", newline="", encoding="utf-8")
        try:
            if args.format == "jsonl":
                count = write_jsonl(rows, out)
            elif args.format == "csv":
                count = write_csv(rows, out, with_text=args.with_conversations)
            else:
                count = write_chat(rows, out)
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        store.close()
    print(f"exported {count} feedback row(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
