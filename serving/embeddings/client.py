"""How the API side reaches the embedding model: a Serve handle, or in-process for tests."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from serving.embeddings.deployment import EmbedResult
from serving.embeddings.model import MiniLMEmbedder
from serving.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    """Embeds one request's texts."""

    async def embed(self, texts: list[str]) -> EmbedResult:
        """Vectors, token counts and the size of the batch that served them."""
        ...


class HandleEmbedder:
    """Calls the embeddings deployment through its Serve ``DeploymentHandle``."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def embed(self, texts: list[str]) -> EmbedResult:
        try:
            return await self.handle.embed.remote(texts)
        except Exception as exc:  # RayActorError, BackPressureError, ...: the model is not reachable
            logger.warning("embeddings deployment call failed: %s", type(exc).__name__)
            raise ServiceUnavailableError("the embeddings model is not available") from exc


class LocalEmbedder:
    """Runs the model in this process (unit tests, single-process tools); no batching."""

    def __init__(self, model: MiniLMEmbedder) -> None:
        self.model = model
        self._lock = asyncio.Lock()

    async def embed(self, texts: list[str]) -> EmbedResult:
        async with self._lock:
            batch = await asyncio.to_thread(self.model.embed, texts)
        return EmbedResult(batch.vectors, batch.token_counts, 1)
