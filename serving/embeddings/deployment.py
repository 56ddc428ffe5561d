"""The embeddings deployment: MiniLM in its own Ray Serve replica, requests batched.

``@serve.batch`` collects concurrent ``embed`` calls (up to ``max_batch_size``,
waiting at most ``batch_wait_timeout_s`` for the batch to fill) into one forward
pass, which runs in a worker thread so the replica keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve import Application

from serving.embeddings.metrics import EmbeddingsMetrics
from serving.embeddings.model import MiniLMEmbedder
from serving.config.embeddings import EmbeddingsSettings
from serving.privacy.log_filter import install_redaction
from serving.config.privacy import PrivacySettings

DEPLOYMENT_NAME = "embeddings"


@dataclass(frozen=True)
class EmbedResult:
    """What one ``embed`` call returns: vectors (float32 rows), tokens, and its batch's size."""

    vectors: Any  # numpy.ndarray
    token_counts: list[int]
    batch_size: int


@serve.deployment(name=DEPLOYMENT_NAME)
class EmbeddingsDeployment:
    """Serves ``embed(texts)`` with request batching."""

    def __init__(self, settings: dict[str, Any], privacy: dict[str, Any] | None = None) -> None:
        install_redaction(PrivacySettings(**(privacy or {})))  # on unless privacy.redact_logs is off
        self.settings = EmbeddingsSettings(**settings)
        self.embedder = MiniLMEmbedder(
            self.settings.path,
            max_seq_length=self.settings.max_seq_length,
            max_forward_texts=self.settings.max_forward_texts,
        )
        self.metrics = EmbeddingsMetrics(self.settings.model_id)
        self._embed_batch.set_max_batch_size(self.settings.max_batch_size)
        self._embed_batch.set_batch_wait_timeout_s(self.settings.batch_wait_timeout_s)

    async def embed(self, texts: list[str]) -> EmbedResult:
        """Embed one request's texts (batched with concurrent requests)."""
        return await self._embed_batch(list(texts))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _embed_batch(self, requests: list[list[str]]) -> list[EmbedResult]:
        flat = [text for texts in requests for text in texts]
        started = time.perf_counter()
        batch = await asyncio.to_thread(self.embedder.embed, flat)
        self.metrics.batch(len(requests), len(flat), sum(batch.token_counts), time.perf_counter() - started)
        results, cursor = [], 0
        for texts in requests:
            end = cursor + len(texts)
            results.append(EmbedResult(batch.vectors[cursor:end], batch.token_counts[cursor:end], len(requests)))
            cursor = end
        return results

    def check_health(self) -> None:
        """Serve's health check: the model is loaded (it is, once __init__ returned)."""


def embeddings_app(settings: EmbeddingsSettings, privacy: PrivacySettings | None = None) -> Application:
    """The bound embeddings deployment, to pass as an argument of the ingress deployment.

    ``privacy`` decides the replica's log redaction (default: on).
    """
    return EmbeddingsDeployment.options(
        num_replicas=settings.num_replicas,
        max_ongoing_requests=max(settings.max_ongoing_requests, settings.max_batch_size),
        ray_actor_options={"num_cpus": settings.num_cpus},
    ).bind(settings.model_dump(mode="json"), (privacy or PrivacySettings()).model_dump(mode="json"))
