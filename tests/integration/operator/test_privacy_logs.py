"""Privacy by default: secrets and PII planted in requests never reach any log; the audit log
(opt-in) has them redacted."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

from tests.integration.operator.conftest import PLANTED_PII, OperatorStack


def plant(operator_stack: OperatorStack, request_id: str) -> None:
    """Send the planted values through every route, in bodies and headers."""
    base = operator_stack.stack.api_base
    model = operator_stack.stack.model
    everything = "my details: " + ", ".join(PLANTED_PII.values())
    contact = f"write to {PLANTED_PII['email']} or call {PLANTED_PII['phone']}"  # flagged, not blocked
    headers = {
        "authorization": f"Bearer {PLANTED_PII['key']}",
        "x-user-email": PLANTED_PII["email"],
        "x-request-id": request_id,
    }
    with httpx.Client(timeout=60, headers=headers) as client:
        for stream in (False, True):
            body = {"model": model, "messages": [{"role": "user", "content": contact}], "max_tokens": 8, "stream": stream}
            assert client.post(f"{base}/chat/completions", json=body).status_code == 200
            body["messages"][0]["content"] = everything  # the card and the key are blocked inputs
            r = client.post(f"{base}/chat/completions", json=body)
            assert r.status_code == 400 and r.json()["error"]["code"] == "content_filter"
        assert client.post(f"{base}/completions", json={"model": model, "prompt": contact, "max_tokens": 4}).status_code == 200
        assert client.post(f"{base}/moderations", json={"input": everything}).status_code == 200
        assert client.post(f"{base}/embeddings", json={"model": "all-MiniLM-L6-v2", "input": everything}).status_code == 200
        r = client.post(f"{base}/feedback", json={"response_id": PLANTED_PII["key"], "score": 1, "comment": everything})
        assert r.status_code == 404
        # A refused request naming a planted value as a parameter.
        r = client.post(f"{base}/chat/completions", json={"model": model, PLANTED_PII["email"]: 1, "messages": []})
        assert r.status_code == 400


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def logged_text(operator_stack: OperatorStack) -> dict[Path, str]:
    return {p: p.read_bytes().decode("utf-8", errors="replace") for p in files_under(operator_stack.stack.log_dir)}


def test_planted_values_never_reach_logs_and_are_redacted_in_the_audit_log(operator_stack: OperatorStack) -> None:
    request_id = f"planted-{uuid.uuid4().hex}"
    plant(operator_stack, request_id)
    # The scan must cover where the requests were logged: wait for their request-log lines.
    deadline = time.monotonic() + 30
    while not any(request_id in text for text in logged_text(operator_stack).values()):
        assert time.monotonic() < deadline, "the planted requests never showed up in Ray's logs"
        time.sleep(1)
    logs = files_under(operator_stack.stack.log_dir)
    leaks = []
    for path in logs + files_under(operator_stack.audit_dir):
        data = path.read_bytes().decode("utf-8", errors="replace")
        leaks += [(str(path), name) for name, value in PLANTED_PII.items() if value in data]
    assert leaks == []

    records = [
        json.loads(line)
        for path in files_under(operator_stack.audit_dir)
        for line in path.read_text().splitlines()
    ]
    planted_records = [r for r in records if r["request_id"] == request_id]
    assert len(planted_records) == 3  # chat, streamed chat, completion (blocked inputs never ran)
    audited = json.dumps(planted_records)
    assert "[REDACTED:EMAIL]" in audited and "[REDACTED:PHONE]" in audited
