"""Chat wire rules through the OpenAI app: a response_format json_schema is bounded in size and depth."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.apps import build_app
from serving.config.settings import Settings
from serving.engine.fake import FakeEngine

MODEL = "fake-model"
PARAM = "response_format.json_schema.schema"


def client_for(engine: FakeEngine) -> httpx.AsyncClient:
    app = build_app(Settings(), engine)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def nested(depth: int) -> dict:
    """A schema whose nesting (objects and lists) is ``depth`` deep."""
    schema: dict = {"type": "string"}
    while depth_of(schema) < depth:
        schema = {"anyOf": [schema]} if depth - depth_of(schema) >= 2 else {"not": schema}
    return schema


def depth_of(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


async def post_schema(schema) -> tuple[httpx.Response, FakeEngine]:
    engine = FakeEngine()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    }
    async with client_for(engine) as client:
        return await client.post("/v1/chat/completions", json=body), engine


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "description": "d" * 70_000},
        {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 60} for i in range(1200)}},
        nested(40),
        nested(300),
    ],
    ids=["one-long-string", "many-properties", "depth-40", "depth-300"],
)
async def test_oversized_or_deep_schema_is_400_naming_the_schema(schema) -> None:
    response, engine = await post_schema(schema)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == PARAM and error["type"] == "invalid_request_error"
    assert "65536" in error["message"] or "32" in error["message"]
    assert engine.requests == []


async def test_a_schema_within_the_bounds_is_used() -> None:
    schema = nested(32)
    assert depth_of(schema) == 32
    response, engine = await post_schema(schema)
    assert response.status_code == 200, response.text
    assert engine.requests[0].sampling.json_schema is not None
