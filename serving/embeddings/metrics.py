"""Embeddings metrics (prefix ``serving_embeddings_``), recorded in the embeddings replica.

``batch_size`` is how many requests one forward pass served (the point of
``@serve.batch``); ``batch_texts`` how many texts it embedded.
"""

from __future__ import annotations

from collections import Counter as Tally

from ray.serve.metrics import Counter, Histogram

_BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128]
_LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]


class EmbeddingsMetrics:
    """Batch sizes, texts and forward-pass latency of one embeddings replica."""

    def __init__(self, model: str) -> None:
        self.model = model
        tags = ("model",)
        self._batch_size = Histogram(
            "serving_embeddings_batch_size",
            description="Requests served by one batched forward pass.",
            boundaries=_BATCH_BUCKETS,
            tag_keys=tags,
        )
        self._batch_texts = Histogram(
            "serving_embeddings_batch_texts",
            description="Texts embedded by one batched forward pass.",
            boundaries=_BATCH_BUCKETS,
            tag_keys=tags,
        )
        self._forward_seconds = Histogram(
            "serving_embeddings_forward_seconds",
            description="Time of one batched forward pass (tokenize + model + pooling).",
            boundaries=_LATENCY_BUCKETS_S,
            tag_keys=tags,
        )
        self._tokens = Counter(
            "serving_embeddings_tokens",
            description="Tokens embedded.",
            tag_keys=tags,
        )
        self.tally: Tally[str] = Tally()
        self.max_batch_size = 0

    def batch(self, requests: int, texts: int, tokens: int, seconds: float) -> None:
        """One forward pass served ``requests`` requests with ``texts`` texts."""
        tags = {"model": self.model}
        self._batch_size.observe(requests, tags=tags)
        self._batch_texts.observe(texts, tags=tags)
        self._forward_seconds.observe(seconds, tags=tags)
        self._tokens.inc(tokens, tags=tags)
        self.tally["batches"] += 1
        self.tally["requests"] += requests
        self.max_batch_size = max(self.max_batch_size, requests)
