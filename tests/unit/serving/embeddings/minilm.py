"""One MiniLM model per test process (loading it takes seconds), shared by the unit tests."""

from __future__ import annotations

import functools

from serving.embeddings.model import MiniLMEmbedder


@functools.lru_cache(maxsize=1)
def shared_embedder() -> MiniLMEmbedder:
    """The packaged all-MiniLM-L6-v2, loaded once."""
    return MiniLMEmbedder()
