"""Sentence embeddings: the packaged MiniLM model in its own batched Serve deployment."""

from serving.embeddings.settings import EmbeddingsSettings

__all__ = ["EmbeddingsSettings"]
