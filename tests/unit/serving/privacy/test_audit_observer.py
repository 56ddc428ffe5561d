"""The audit observer through the app: opt-in only, redacted text, nothing planted leaks into logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx

from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from tests.unit.apps import build_app

PLANTED = {
    "email": "planted.person@example.org",
    "phone": "+1 415 555 0199",
    "card": "4242 4242 4242 4242",
    "key": "sk-plantedSECRETvalue1234567890",
}
REPLY = ("Sure", ", ", "mail", " ", PLANTED["email"], " now", ".")


def make(tmp_path: Path, audit: bool):
    settings = load_settings(
        {
            "feedback": {"database_url": f"sqlite:///{tmp_path}/f.db", "store_conversations": True},
            "moderation": {"pii": {"email": "flag", "phone": "flag", "card": "flag", "secret": "flag"}},
            "privacy": {"audit": {"enabled": audit, "dir": str(tmp_path / "audit")}},
        }
    )
    engine = FakeEngine(FakeEngineConfig(reply=REPLY))
    app = build_app(settings, engine)
    op = app.state.extensions
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), op


async def post_planted(client: httpx.AsyncClient) -> str:
    content = " ".join(PLANTED.values())
    body = {"model": "fake-model", "messages": [{"role": "user", "content": f"my data: {content}"}]}
    r = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {PLANTED['key']}"})
    assert r.status_code == 200
    return r.json()["id"]


async def test_audit_log_has_redacted_text(tmp_path: Path) -> None:
    client, op = make(tmp_path, audit=True)
    response_id = await post_planted(client)
    op.close()  # the audit writer runs off the event loop: closing waits for its queue
    [path] = list((tmp_path / "audit").glob("audit-*.jsonl"))
    text = path.read_text()
    for value in PLANTED.values():
        assert value not in text
    [record] = [json.loads(line) for line in text.splitlines()]
    assert record["response_id"] == response_id
    content = record["messages"][0]["content"]
    for kind in ("EMAIL", "PHONE", "CARD", "SECRET"):
        assert f"[REDACTED:{kind}]" in content
    assert record["completions"] == ["Sure, mail [REDACTED:EMAIL] now."]
    assert record["moderation"] in {"input_flagged", "output_flagged"}


async def test_no_audit_file_unless_enabled(tmp_path: Path) -> None:
    client, op = make(tmp_path, audit=False)
    await post_planted(client)
    assert not (tmp_path / "audit").exists()


async def test_nothing_planted_reaches_the_logs(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client, op = make(tmp_path, audit=True)
    response_id = await post_planted(client)
    r = await client.post("/v1/feedback", json={"response_id": response_id, "score": 1, "comment": PLANTED["email"]})
    assert r.status_code == 201
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert response_id in logged or caplog.records  # the request was logged at all
    for value in PLANTED.values():
        assert value not in logged
    # The stored conversation (opt-in) is redacted too.
    rows = list(op.components["feedback_store"].iter_feedback(with_conversations=True))
    assert PLANTED["email"] not in json.dumps(rows[0]["messages"]) + json.dumps(rows[0]["completions"])
