"""Embeddings metrics (prefix ``serving_embeddings_``), recorded in the embeddings replica.

``batch_size`` is how many requests one forward pass served (the point of
``@serve.batch``); ``batch_texts`` how many texts it embedded. Declared in
``serving.observability.catalog`` and recorded through a ``MetricsBackend`` (by default
``ray.serve.metrics``).
"""

from __future__ import annotations

from collections import Counter as Tally

from serving.observability.backends import MetricsBackend, RayMetricsBackend
from serving.observability.catalog import (
    EMBEDDINGS_BATCH_SIZE,
    EMBEDDINGS_BATCH_TEXTS,
    EMBEDDINGS_FORWARD_SECONDS,
    EMBEDDINGS_TOKENS,
)


class EmbeddingsMetrics:
    """Batch sizes, texts and forward-pass latency of one embeddings replica."""

    def __init__(self, model: str, *, backend: MetricsBackend | None = None) -> None:
        self.model = model
        self.backend = backend if backend is not None else RayMetricsBackend()
        self._batch_size = self.backend.instrument(EMBEDDINGS_BATCH_SIZE)
        self._batch_texts = self.backend.instrument(EMBEDDINGS_BATCH_TEXTS)
        self._forward_seconds = self.backend.instrument(EMBEDDINGS_FORWARD_SECONDS)
        self._tokens = self.backend.instrument(EMBEDDINGS_TOKENS)
        self.tally: Tally[str] = Tally()
        self.max_batch_size = 0

    def batch(self, requests: int, texts: int, tokens: int, seconds: float) -> None:
        """One forward pass served ``requests`` requests with ``texts`` texts."""
        tags = {"model": self.model}
        self._batch_size.record(requests, tags)
        self._batch_texts.record(texts, tags)
        self._forward_seconds.record(seconds, tags)
        if tokens > 0:  # a Ray counter refuses increments <= 0
            self._tokens.record(tokens, tags)
        self.tally["batches"] += 1
        self.tally["requests"] += requests
        self.max_batch_size = max(self.max_batch_size, requests)
