"""Sentence embeddings: the packaged MiniLM model in its own batched Serve deployment."""

from serving.config.embeddings import EmbeddingsSettings

__all__ = ["EmbeddingsSettings"]
