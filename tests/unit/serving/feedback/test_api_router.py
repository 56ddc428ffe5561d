"""POST /v1/feedback through the OpenAI app (fake engine): round trip, 404, 409, 400s, metrics."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from serving.config.settings import load_settings
from serving.engine.fake import FakeEngine
from tests.unit.apps import build_app


@pytest.fixture
def app_and_op(db_url: str):
    settings = load_settings(
        {"feedback": {"database_url": db_url, "flush_interval_s": 30.0, "lookup_grace_s": 1.0},
         "model": {"version": "v7"}}
    )
    engine = FakeEngine()
    app = build_app(settings, engine)
    op = app.state.extensions
    yield app, op


@pytest.fixture
def client(app_and_op) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app_and_op[0]), base_url="http://test")


async def chat(client: httpx.AsyncClient, stream: bool = False) -> str:
    body = {"model": "fake-model", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    if stream:
        return r.text.split('"id":"', 1)[1].split('"', 1)[0]
    return r.json()["id"]


async def test_round_trip_with_metadata(client, app_and_op) -> None:
    _, op = app_and_op
    response_id = await chat(client)
    r = await client.post(
        "/v1/feedback",
        json={"response_id": response_id, "thumbs": "up", "score": 4, "comment": " great ", "tags": ["Helpful", "helpful"]},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["object"] == "feedback" and body["response_id"] == response_id and body["id"].startswith("fb-")
    [row] = list(op.components["feedback_store"].iter_feedback())
    assert row["comment"] == "great" and row["tags"] == ["helpful"]
    assert row["model"] == "fake-model" and row["model_version"] == "v7" and row["finish_reason"] == "stop"
    assert row["completion_tokens"] == 6 and row["prompt_tokens"] == 4 and row["stream"] is False
    assert row["moderation"] == "passed" and row["latency_s"] >= 0
    metrics = op.components["feedback_metrics"]
    assert metrics.tally[("submitted", "v7", "up", "4")] == 1


async def test_streamed_responses_are_recorded_too(client, app_and_op) -> None:
    response_id = await chat(client, stream=True)
    r = await client.post("/v1/feedback", json={"response_id": response_id, "thumbs": "down"})
    assert r.status_code == 201
    [row] = list(app_and_op[1].components["feedback_store"].iter_feedback())
    assert row["stream"] is True and row["thumbs"] == "down" and row["score"] is None


async def test_unknown_and_duplicate(client, app_and_op) -> None:
    r = await client.post("/v1/feedback", json={"response_id": "chatcmpl-000000000000000000000000", "score": 3})
    assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"
    response_id = await chat(client)
    assert (await client.post("/v1/feedback", json={"response_id": response_id, "score": 3})).status_code == 201
    r = await client.post("/v1/feedback", json={"response_id": response_id, "score": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_feedback"
    metrics = app_and_op[1].components["feedback_metrics"]
    assert metrics.tally[("rejected", "not_found")] == 1 and metrics.tally[("rejected", "duplicate")] == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"response_id": "x"}, None),  # no rating at all
        ({"response_id": "x", "score": 6}, "score"),
        ({"response_id": "x", "score": 0}, "score"),
        ({"response_id": "x", "thumbs": "sideways"}, "thumbs"),
        ({"response_id": "x", "thumbs": "up", "tags": ["has space"]}, "tags.0"),
        ({"response_id": "x", "thumbs": "up", "tags": [f"t{i}" for i in range(17)]}, "tags"),
        ({"response_id": "x", "thumbs": "up", "comment": "c" * 4001}, "comment"),
        ({"response_id": "bad id!", "thumbs": "up"}, "response_id"),
        ({"thumbs": "up"}, "response_id"),
        ({"response_id": "x", "thumbs": "up", "rating": 5}, "rating"),
    ],
)
async def test_bad_values_are_400(client, body, param) -> None:
    r = await client.post("/v1/feedback", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"


async def test_concurrent_posts_all_land(client, app_and_op) -> None:
    ids = [await chat(client) for _ in range(20)]
    results = await asyncio.gather(
        *(client.post("/v1/feedback", json={"response_id": i, "score": 1 + n % 5}) for n, i in enumerate(ids))
    )
    assert [r.status_code for r in results] == [201] * 20
    assert len(list(app_and_op[1].components["feedback_store"].iter_feedback())) == 20


async def test_key_id_from_the_gateway_scopes_feedback(app_and_op) -> None:
    app, op = app_and_op

    @app.middleware("http")
    async def fake_auth(request, call_next):  # what the gateway's auth leaves on request.state
        request.state.key_id = request.headers.get("x-test-key")
        return await call_next(request)

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    store = op.components["feedback_store"]
    from serving.feedback.store import ResponseRecord

    store.record_response(
        ResponseRecord("chatcmpl-owned", "fake-model", "v7", "/v1/chat/completions", False, 0.1, 1, 1, "stop", None, "owner")
    )
    r = await client.post("/v1/feedback", json={"response_id": "chatcmpl-owned", "score": 2}, headers={"x-test-key": "other"})
    assert r.status_code == 404
    r = await client.post("/v1/feedback", json={"response_id": "chatcmpl-owned", "score": 2}, headers={"x-test-key": "owner"})
    assert r.status_code == 201


async def test_feedback_right_after_the_response_finds_its_buffered_record(client) -> None:
    # flush_interval_s is 30 s here: the record is still in this replica's buffer.
    response_id = await chat(client)
    r = await client.post("/v1/feedback", json={"response_id": response_id, "thumbs": "up"})
    assert r.status_code == 201


async def test_a_record_buffered_by_another_replica_is_awaited(client, db_url) -> None:
    from serving.feedback.store import FeedbackStore
    from tests.unit.serving.feedback.conftest import record

    other = FeedbackStore(db_url, flush_interval_s=30.0).start()  # another replica's store
    try:
        other.record_response(record("chatcmpl-elsewhere", model="fake-model"))
        flusher = asyncio.get_running_loop().call_later(0.3, other.flush)
        r = await client.post("/v1/feedback", json={"response_id": "chatcmpl-elsewhere", "score": 2})
        assert r.status_code == 201
        flusher.cancel()
    finally:
        other.close()


async def test_a_lone_surrogate_in_the_comment_is_400_naming_it(client) -> None:
    response_id = await chat(client)
    raw = '{"response_id": "%s", "thumbs": "up", "comment": "nice \\ud800"}' % response_id
    r = await client.post("/v1/feedback", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "comment" and error["type"] == "invalid_request_error" and "surrogate" in error["message"]
