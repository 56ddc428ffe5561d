"""/v1/embeddings through the app (in-process model): official client, formats, errors."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest
from fastapi import FastAPI

from serving.api.errors import register_error_handlers
from serving.embeddings.api_router import BATCH_SIZE_HEADER, build_router
from serving.embeddings.client import LocalEmbedder
from serving.embeddings.service import EmbeddingsService
from serving.config.embeddings import EmbeddingsSettings
from tests.unit.serving.embeddings.minilm import shared_embedder


@pytest.fixture
def client() -> httpx.AsyncClient:
    settings = EmbeddingsSettings(enabled=True, max_inputs=4, max_input_chars=100)
    app = FastAPI()
    app.include_router(build_router(EmbeddingsService(settings, LocalEmbedder(shared_embedder()))))
    register_error_handlers(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_official_client_round_trip(client: httpx.AsyncClient) -> None:
    oai = openai.AsyncOpenAI(api_key="unused", base_url="http://test/v1", http_client=client)
    texts = ["hello world", "The capital of France is Paris."]
    result = await oai.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
    assert [d.index for d in result.data] == [0, 1]
    direct = shared_embedder().embed(texts).vectors
    assert np.allclose(np.array([d.embedding for d in result.data]), direct, atol=1e-6)
    assert result.usage.prompt_tokens == result.usage.total_tokens == 4 + 9
    assert result.model == "all-MiniLM-L6-v2"


async def test_base64_encoding_and_batch_header(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "hello world", "encoding_format": "base64"}
    )
    assert r.status_code == 200 and r.headers[BATCH_SIZE_HEADER] == "1"
    vector = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (384,)
    assert np.allclose(vector, shared_embedder().embed(["hello world"]).vectors[0], atol=1e-6)


async def test_alias_model_name(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/embeddings", json={"model": "sentence-transformers/all-MiniLM-L6-v2", "input": ["a"]}
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "model_not_found", "model"),
        ({"model": "all-MiniLM-L6-v2", "input": [1, 2, 3]}, 400, "unsupported_parameter", "input"),
        ({"model": "all-MiniLM-L6-v2", "input": [[1, 2]]}, 400, "unsupported_parameter", "input"),
        ({"model": "all-MiniLM-L6-v2", "input": []}, 400, None, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": ""}, 400, None, "input.0"),
        ({"model": "all-MiniLM-L6-v2", "input": ["a"] * 5}, 400, None, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": "y" * 101}, 400, None, "input.0"),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 128}, 400, "unsupported_parameter", "dimensions"),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "int8"}, 400, "invalid_value", "encoding_format"),
        ({"input": "x"}, 400, None, "model"),
    ],
)
async def test_bad_requests(client: httpx.AsyncClient, body, status, code, param) -> None:
    r = await client.post("/v1/embeddings", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["param"] == param and error["message"]
    if code is not None:
        assert error["code"] == code


async def test_explicit_native_dimensions_are_fine(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 384})
    assert r.status_code == 200
