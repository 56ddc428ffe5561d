"""The logic behind ``POST /v1/embeddings``: validate, embed (batched), format."""

from __future__ import annotations

import base64

import numpy as np

from serving.embeddings.client import Embedder
from serving.embeddings.protocol import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from serving.config.embeddings import EmbeddingsSettings
from serving.errors import InvalidRequestError, ModelNotFoundError, UnsupportedParameterError

DIMENSIONS = 384  # all-MiniLM-L6-v2


class EmbeddingsService:
    """Serves embeddings of one model."""

    def __init__(self, settings: EmbeddingsSettings, embedder: Embedder, *, dimensions: int = DIMENSIONS) -> None:
        self.settings = settings
        self.embedder = embedder
        self.dimensions = dimensions

    def texts(self, body: EmbeddingRequest) -> list[str]:
        """The request's texts, or a 4xx explaining what is wrong."""
        if body.model != self.settings.model_id and body.model not in self.settings.aliases:
            raise ModelNotFoundError(
                f"The model `{body.model}` does not exist; embeddings are served by `{self.settings.model_id}`.",
                param="model",
            )
        if body.dimensions is not None and body.dimensions != self.dimensions:
            raise UnsupportedParameterError(
                f"`{self.settings.model_id}` produces {self.dimensions}-dimensional vectors; "
                "other `dimensions` are not supported.",
                param="dimensions",
            )
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise InvalidRequestError("`input` must not be empty.", param="input")
        if any(not isinstance(t, str) for t in texts):
            raise UnsupportedParameterError(
                "Token-id inputs are not supported (they are specific to OpenAI's tokenizers); send text.",
                param="input",
            )
        if len(texts) > self.settings.max_inputs:
            raise InvalidRequestError(
                f"At most {self.settings.max_inputs} inputs are accepted per request; got {len(texts)}.",
                param="input",
            )
        for i, text in enumerate(texts):
            if not text:
                raise InvalidRequestError(f"Input {i} is an empty string.", param=f"input.{i}")
            if len(text) > self.settings.max_input_chars:
                raise InvalidRequestError(
                    f"Input {i} is longer than {self.settings.max_input_chars} characters.", param=f"input.{i}"
                )
        return texts

    async def create(self, body: EmbeddingRequest) -> tuple[EmbeddingResponse, int]:
        """The response and the number of requests its forward pass served."""
        texts = self.texts(body)
        result = await self.embedder.embed(texts)
        vectors = np.asarray(result.vectors, dtype=np.float32)
        data = [
            Embedding(index=i, embedding=_encode(vectors[i], body.encoding_format)) for i in range(len(texts))
        ]
        tokens = int(sum(result.token_counts))
        response = EmbeddingResponse(
            data=data, model=body.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        )
        return response, result.batch_size


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()
