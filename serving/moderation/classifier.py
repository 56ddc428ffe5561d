"""The pluggable moderation classifier: a batched Ray Serve deployment, and its client.

The default classifier scores a text by embedding similarity to example phrases of
each category (all-MiniLM-L6-v2, the packaged model): the text is split into
sentences, and a category's score is the highest cosine similarity between any
sentence and any of its examples. ``@serve.batch`` puts many callers' texts into one
forward pass. Any other class with ``async classify(text) -> dict[str, float]`` can
replace it (``moderation.classifier.deployment_class``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import re
from typing import Any, Callable

import numpy as np
from ray import serve
from ray.serve import Application

from serving.config.moderation import ClassifierSettings
from serving.privacy.log_filter import install_redaction
from serving.config.privacy import PrivacySettings

logger = logging.getLogger(__name__)

DEPLOYMENT_NAME = "moderation-classifier"
MAX_SENTENCES = 16
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text's sentences (at most MAX_SENTENCES, the last ones kept), or the text itself."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if len(p.strip()) >= 3]
    return parts[-MAX_SENTENCES:] or [text]


class SimilarityScorer:
    """Scores texts against per-category example phrases with an embedding function."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], categories: dict[str, tuple[str, ...]]) -> None:
        self.embed = embed
        self.names = list(categories)
        examples = [e for name in self.names for e in categories[name]]
        self.owner = np.array([i for i, name in enumerate(self.names) for _ in categories[name]])
        self.anchors = embed(examples)

    def score(self, texts: list[str]) -> list[dict[str, float]]:
        """Scores (0..1) per category for each text, with one embedding pass for all."""
        split = [sentences(t) for t in texts]
        flat = [s for parts in split for s in parts]
        sims = self.embed(flat) @ self.anchors.T  # cosine: vectors are unit length
        results, cursor = [], 0
        for parts in split:
            block = sims[cursor : cursor + len(parts)].max(axis=0)
            cursor += len(parts)
            scores = {}
            for i, name in enumerate(self.names):
                scores[name] = float(np.clip(block[self.owner == i].max(), 0.0, 1.0))
            results.append(scores)
        return results


@serve.deployment(name=DEPLOYMENT_NAME)
class EmbeddingSimilarityClassifier:
    """The default classifier deployment (MiniLM similarity to example phrases)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from serving.embeddings.model import MiniLMEmbedder

        self.settings = ClassifierSettings(**settings)
        model = MiniLMEmbedder()
        self.scorer = SimilarityScorer(lambda texts: model.embed(texts).vectors, self.settings.categories)
        self.classify_batch.set_max_batch_size(self.settings.max_batch_size)
        self.classify_batch.set_batch_wait_timeout_s(self.settings.batch_wait_timeout_s)
        self.max_batch_size_seen = 0

    async def classify(self, text: str) -> dict[str, float]:
        """Scores per category of one text (batched with concurrent callers)."""
        return await self.classify_batch(text)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def classify_batch(self, texts: list[str]) -> list[dict[str, float]]:
        self.max_batch_size_seen = max(self.max_batch_size_seen, len(texts))
        return await asyncio.to_thread(self.scorer.score, texts)


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    if not name:
        module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _with_log_redaction(cls: type, privacy: PrivacySettings) -> type:
    """``cls`` whose constructor first installs log redaction (pluggable classes need not know)."""
    if inspect.iscoroutinefunction(cls.__init__):

        async def __init__(self, *args: Any, **kwargs: Any) -> None:
            install_redaction(privacy)
            await super(replica, self).__init__(*args, **kwargs)

    else:

        def __init__(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[misc]
            install_redaction(privacy)
            super(replica, self).__init__(*args, **kwargs)

    replica = type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})
    replica.__qualname__ = cls.__qualname__
    return replica


def classifier_app(settings: ClassifierSettings, privacy: PrivacySettings | None = None) -> Application:
    """The bound classifier deployment, to pass as an argument of the ingress deployment.

    Whatever the class, its replica installs log redaction per ``privacy`` (default: on).
    """
    cls = _import(settings.deployment_class)
    deployment = cls if hasattr(cls, "options") else serve.deployment(name=DEPLOYMENT_NAME)(cls)
    return deployment.options(
        func_or_class=_with_log_redaction(deployment.func_or_class, privacy or PrivacySettings()),
        name=DEPLOYMENT_NAME,
        num_replicas=settings.num_replicas,
        max_ongoing_requests=max(64, settings.max_batch_size),
        ray_actor_options={"num_cpus": settings.num_cpus},
    ).bind(settings.model_dump(mode="json"))


class HandleClassifier:
    """The policy's view of the classifier deployment (a ``Classifier``)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def classify(self, text: str) -> dict[str, float]:
        return await self.handle.classify.remote(text)


class LocalClassifier:
    """A ``Classifier`` running a scorer in this process (unit tests, tools); no batching."""

    def __init__(self, scorer: SimilarityScorer) -> None:
        self.scorer = scorer

    async def classify(self, text: str) -> dict[str, float]:
        return (await asyncio.to_thread(self.scorer.score, [text]))[0]
