"""The MiniLM embedder: shape, unit length, semantics, and batching that does not change results."""

from __future__ import annotations

import numpy as np

from tests.unit.serving.embeddings.minilm import shared_embedder

# all-MiniLM-L6-v2's published embedding of "hello world" (first five dimensions).
HELLO_WORLD_HEAD = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394]


def test_shape_unit_length_and_reference_values() -> None:
    batch = shared_embedder().embed(["hello world", "The capital of France is Paris."])
    assert batch.vectors.shape == (2, 384) and batch.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch.vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(batch.vectors[0, :5], HELLO_WORLD_HEAD, atol=2e-4)
    assert batch.token_counts == [4, 9]  # [CLS] ... [SEP]


def test_similar_sentences_are_closer() -> None:
    a, b, c = shared_embedder().embed(
        ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply today."]
    ).vectors
    assert a @ b > a @ c + 0.3


def test_batched_and_split_forward_passes_give_the_same_vectors() -> None:
    model = shared_embedder()
    texts = ["short", "a somewhat longer sentence about embeddings and padding", "mid length text here", "x" * 300]
    alone = np.stack([model.embed([t]).vectors[0] for t in texts])
    together = model.embed(texts).vectors
    old = model.max_forward_texts
    model.max_forward_texts = 3  # forces two forward passes, sorted by length
    try:
        split = model.embed(texts).vectors
    finally:
        model.max_forward_texts = old
    assert np.allclose(alone, together, atol=1e-5)
    assert np.allclose(alone, split, atol=1e-5)


def test_long_inputs_are_truncated_to_max_seq_length() -> None:
    batch = shared_embedder().embed(["word " * 1000])
    assert batch.token_counts == [256]


def test_empty_list() -> None:
    batch = shared_embedder().embed([])
    assert batch.vectors.shape == (0, 384) and batch.token_counts == []
