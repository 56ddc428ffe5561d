"""Feedback through the real stack: round trip into SQLite, export CLI, concurrency, replica restart."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import wait_ready
from tests.integration.operator.conftest import PLANTED_PII, OperatorStack, wait_for_metric

REPO = Path(__file__).resolve().parents[3]
MESSAGES = [{"role": "user", "content": "Name a colour."}]


def export(operator_stack: OperatorStack, *args: str) -> str:
    """Run the export CLI in its own process against the stack's database file."""
    result = subprocess.run(
        [sys.executable, "-m", "serving.feedback.export", "--database-url", operator_stack.database_url, *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def exported(operator_stack: OperatorStack) -> dict[str, dict]:
    return {row["response_id"]: row for row in map(json.loads, export(operator_stack).splitlines())}


def post_feedback(operator_stack: OperatorStack, body: dict) -> httpx.Response:
    return httpx.post(f"{operator_stack.stack.api_base}/feedback", json=body, timeout=60)


@pytest.fixture
def client(operator_stack: OperatorStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=operator_stack.stack.api_base, api_key="unused", max_retries=0, timeout=60)


def test_round_trip_into_sqlite_and_export(operator_stack: OperatorStack, client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=operator_stack.stack.model, messages=MESSAGES, max_tokens=8, temperature=0
    )
    r = post_feedback(
        operator_stack,
        {"response_id": response.id, "thumbs": "up", "score": 5, "comment": f"mail {PLANTED_PII['email']}", "tags": ["concise"]},
    )
    assert r.status_code == 201, r.text
    row = exported(operator_stack)[response.id]
    assert row["feedback_id"] == r.json()["id"] and row["thumbs"] == "up" and row["score"] == 5
    assert row["tags"] == ["concise"] and row["model"] == operator_stack.stack.model
    assert row["model_version"] == operator_stack.stack.settings.model.version
    assert row["prompt_tokens"] == response.usage.prompt_tokens
    assert row["completion_tokens"] == response.usage.completion_tokens
    assert row["finish_reason"] == response.choices[0].finish_reason and row["stream"] is False
    assert row["moderation"] in ("passed", "input_flagged") and row["latency_s"] > 0
    assert "messages" not in row  # no conversation text: the deployment did not opt in

    table = list(csv.DictReader(io.StringIO(export(operator_stack, "--format", "csv"))))
    assert any(line["response_id"] == response.id and line["tags"] == "concise" for line in table)


def test_unknown_duplicate_and_bad_values(operator_stack: OperatorStack, client: openai.OpenAI) -> None:
    r = post_feedback(operator_stack, {"response_id": "chatcmpl-doesnotexist0000000000000", "thumbs": "down"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"
    response = client.chat.completions.create(model=operator_stack.stack.model, messages=MESSAGES, max_tokens=4)
    assert post_feedback(operator_stack, {"response_id": response.id, "thumbs": "down"}).status_code == 201
    r = post_feedback(operator_stack, {"response_id": response.id, "thumbs": "up"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_feedback"
    r = post_feedback(operator_stack, {"response_id": response.id, "score": 9})
    assert r.status_code == 400 and r.json()["error"]["param"] == "score"


def _stream_id(client: openai.OpenAI, model: str) -> str:
    stream = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=6, stream=True)
    ids = {chunk.id for chunk in stream}
    assert len(ids) == 1
    return ids.pop()


def kill_model_replica() -> None:
    """Kill the model deployment's replica actor; Serve starts a new one."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#model#" in a["name"]]
    assert names, "no model replica found"
    for name in names:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


def test_concurrent_feedback_loses_nothing_and_survives_a_restart(
    operator_stack: OperatorStack, client: openai.OpenAI
) -> None:
    model = operator_stack.stack.model
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: _stream_id(client, model), range(24)))
        scores = [1 + i % 5 for i in range(len(ids))]
        results = list(
            pool.map(lambda pair: post_feedback(operator_stack, {"response_id": pair[0], "score": pair[1]}), zip(ids, scores))
        )
    assert [r.status_code for r in results] == [201] * len(ids)
    rows = exported(operator_stack)
    assert all(rows[i]["score"] == s and rows[i]["stream"] is True for i, s in zip(ids, scores))

    kill_model_replica()
    wait_ready(operator_stack.stack.base_url, timeout_s=300)

    rows = exported(operator_stack)
    assert set(ids) <= set(rows)
    # The new replica sees the stored feedback: a second submission is a duplicate.
    r = post_feedback(operator_stack, {"response_id": ids[0], "thumbs": "up"})
    assert r.status_code == 409
    # ... and records and accepts new responses.
    fresh = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4)
    assert post_feedback(operator_stack, {"response_id": fresh.id, "thumbs": "up"}).status_code == 201


def test_feedback_metrics_by_model_version_and_rating(operator_stack: OperatorStack) -> None:
    version = operator_stack.stack.settings.model.version
    wait_for_metric(
        operator_stack.stack.metrics_url,
        "ray_serving_feedback_submissions",
        lambda samples: sum(
            s.value for s in samples if s.labels.get("model_version") == version and s.labels.get("thumbs") == "up"
        ) >= 1,
        timeout_s=40,
    )
