"""The embedding-similarity classifier (real MiniLM, in process) and sentence splitting."""

from __future__ import annotations

import pytest

from serving.moderation.classifier import LocalClassifier, SimilarityScorer, sentences
from serving.moderation.metrics import ModerationMetrics
from serving.moderation.policy import ModerationPolicy
from serving.config.moderation import ClassifierSettings, ModerationSettings


@pytest.fixture(scope="module")
def scorer() -> SimilarityScorer:
    from tests.unit.serving.embeddings.minilm import shared_embedder

    model = shared_embedder()
    return SimilarityScorer(lambda texts: model.embed(texts).vectors, ClassifierSettings().categories)


def test_sentences() -> None:
    assert sentences("One. Two!\nThree?") == ["One.", "Two!", "Three?"]
    assert sentences("no break here") == ["no break here"]
    assert len(sentences(" ".join(f"S{i}." for i in range(40)))) == 16


def test_scores_separate_harmful_from_benign(scorer: SimilarityScorer) -> None:
    threat, benign, mixed = scorer.score(
        [
            "I am going to murder you tonight.",
            "Let's grab lunch and talk about the project plan.",
            "Nice weather today. I want to end my life.",
        ]
    )
    threshold = ClassifierSettings().threshold
    assert threat["violence"] >= threshold > benign["violence"]
    assert max(benign.values()) < threshold
    assert mixed["self-harm"] >= threshold  # one sentence is enough
    assert all(0.0 <= v <= 1.0 for s in (threat, benign, mixed) for v in s.values())


async def test_policy_with_local_classifier_blocks_semantic_matches(scorer: SimilarityScorer) -> None:
    settings = ModerationSettings(classifier={"enabled": True})
    policy = ModerationPolicy(settings, classifier=LocalClassifier(scorer), metrics=ModerationMetrics("m"))
    assert (await policy.check("I will hurt you and everyone you love", stage="input")).blocked_categories == (
        "violence",
    )
    assert (await policy.check("How do I hurt the feelings of nobody? Be kind.")).blocked is False


class StubClassifier:
    """A pluggable classifier class with a plain constructor."""

    def __init__(self, settings: dict) -> None:
        self.settings = settings

    async def classify(self, text: str) -> dict[str, float]:
        return {}


class AsyncStubClassifier(StubClassifier):
    """A pluggable classifier class with an async constructor (Serve allows both)."""

    async def __init__(self, settings: dict) -> None:
        self.settings = settings


@pytest.mark.parametrize(
    "path",
    [
        "serving.moderation.classifier:EmbeddingSimilarityClassifier",
        "tests.unit.serving.moderation.test_classifier:StubClassifier",
        "tests.unit.serving.moderation.test_classifier:AsyncStubClassifier",
    ],
)
def test_every_classifier_replica_installs_redaction_first(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    import asyncio

    import serving.moderation.classifier as classifier
    from serving.config.privacy import PrivacySettings

    seen: list = []
    monkeypatch.setattr(classifier, "install_redaction", seen.append, raising=False)
    privacy = PrivacySettings()
    app = classifier.classifier_app(ClassifierSettings(deployment_class=path), privacy)
    deployment = app._bound_deployment
    assert deployment.name == classifier.DEPLOYMENT_NAME
    cls = deployment.func_or_class
    if "Stub" not in path:  # the real one would load MiniLM: stop right after the install
        monkeypatch.setattr("serving.embeddings.model.MiniLMEmbedder", lambda: (_ for _ in ()).throw(RuntimeError("stop")))
    instance = object.__new__(cls)
    try:
        result = instance.__init__(*deployment.init_args, **deployment.init_kwargs)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except RuntimeError as exc:
        assert str(exc) == "stop"
    else:
        assert instance.settings == ClassifierSettings(deployment_class=path).model_dump(mode="json")
    assert seen == [privacy]
