"""Settings of the embeddings section: the MiniLM deployment behind /v1/embeddings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt

from serving.config.base import StrictModel


class EmbeddingsSettings(StrictModel):
    """The sentence-embedding model, its Serve deployment and its request batching."""

    enabled: bool = Field(False, description="Deploy the embeddings model and serve /v1/embeddings.")
    model_id: str = Field("all-MiniLM-L6-v2", min_length=1, description="The model id clients send.")
    aliases: tuple[str, ...] = Field(
        ("sentence-transformers/all-MiniLM-L6-v2",), description="Other model ids accepted for it."
    )
    path: Path | None = Field(
        None, description="A local sentence-transformers folder; None: the packaged all-MiniLM-L6-v2."
    )
    max_seq_length: PositiveInt = Field(256, description="Longer inputs are truncated (tokens).")
    max_batch_size: PositiveInt = Field(32, description="Most requests served by one forward pass.")
    batch_wait_timeout_s: float = Field(
        0.005, ge=0, description="How long the first request of a batch waits for others."
    )
    max_forward_texts: PositiveInt = Field(
        64, description="Most texts in one forward pass (a large batch is split, by length)."
    )
    max_inputs: PositiveInt = Field(256, description="Most texts in one request.")
    max_input_chars: PositiveInt = Field(32_768, description="Longest text accepted (characters).")
    num_replicas: PositiveInt = 1
    num_cpus: PositiveFloat = Field(0.25, description="CPUs Ray reserves per embeddings replica.")
    max_ongoing_requests: PositiveInt = Field(
        64, description="Requests one replica accepts at once (at least max_batch_size)."
    )
