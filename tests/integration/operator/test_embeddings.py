"""/v1/embeddings through the real stack: batched under concurrent load, equal to the model's own output."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import openai
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from serving.embeddings.model import packaged_model_path
from tests.integration.operator.conftest import OperatorStack, wait_for_metric

MODEL = "all-MiniLM-L6-v2"
TEXTS = [f"Sentence number {i} is about {topic}." for i, topic in enumerate(["cats", "finance", "rain", "music"] * 8)]


def reference_embeddings(texts: list[str]) -> np.ndarray:
    """The model's direct output (transformers, mean pooling, L2 norm), computed here independently."""
    path = packaged_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    with torch.inference_mode():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=1).numpy()


async def embed_concurrently(base: str, texts: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(
            *(client.post(f"{base}/embeddings", json={"model": MODEL, "input": text}) for text in texts)
        )


def test_concurrent_requests_are_batched_and_match_the_model(operator_stack: OperatorStack) -> None:
    responses = asyncio.run(embed_concurrently(operator_stack.stack.api_base, TEXTS))
    assert [r.status_code for r in responses] == [200] * len(TEXTS)
    batch_sizes = [int(r.headers["x-embeddings-batch-size"]) for r in responses]
    assert max(batch_sizes) > 1, batch_sizes  # requests shared forward passes
    served = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    assert np.allclose(served, reference_embeddings(TEXTS), atol=1e-4)
    wait_for_metric(operator_stack.stack.metrics_url, "ray_serving_embeddings_batch_size", batches_over_one)


def batches_over_one(samples: list) -> bool:
    """The batch-size histogram counted at least one forward pass serving more than one request."""
    total = sum(s.value for s in samples if s.name.endswith("_count"))
    single = sum(s.value for s in samples if s.name.endswith("_bucket") and float(s.labels["le"]) == 1.0)
    return total - single > 0


def test_official_client_batch_input(operator_stack: OperatorStack) -> None:
    client = openai.OpenAI(base_url=operator_stack.stack.api_base, api_key="unused", max_retries=0, timeout=60)
    result = client.embeddings.create(model=MODEL, input=TEXTS[:3])
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (3, 384) and result.usage.prompt_tokens > 0
    assert np.allclose(vectors, reference_embeddings(TEXTS[:3]), atol=1e-4)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
