"""The operator loop, assembled: feedback, moderation, privacy, context policy, embeddings.

``operator_deployments(settings)`` gives the extra Ray Serve deployments (embeddings,
moderation classifier) to bind into the application graph; the model deployment
receives their handles and calls ``build_operator(settings, engine, handles=...)``
to get the policies, stream hooks and routers for ``build_openai_app``::

    op = build_operator(settings, engine, handles=OperatorHandles(embeddings=h1, classifier=h2))
    app = build_openai_app(settings, engine,
                           policies=(*gateway_policies, *op.policies),
                           stream_hooks=(*op.stream_hooks, *other_hooks),
                           extra_routers=op.routers)
    ...
    op.close()   # on replica shutdown: flushes the feedback writer

Order matters: policies run context truncation before input moderation (the policy
judges what the model will read); stream hooks are innermost first: output
moderation, then the response recorder and the audit log (they see the cut stream).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from fastapi import APIRouter

from serving.config.settings import Settings
from serving.context.policy import ContextWindowPolicy
from serving.context.tokens import engine_token_counter
from serving.engine.protocol import Engine
from serving.gateway.hooks import RequestPolicy, StreamHook
from serving.privacy.log_filter import install_redaction
from serving.privacy.pii import redact

logger = logging.getLogger(__name__)

EMBEDDINGS_ARG = "embeddings"
CLASSIFIER_ARG = "moderation_classifier"


@dataclass
class OperatorHandles:
    """Serve handles of the operator deployments (None: not deployed)."""

    embeddings: Any | None = None
    classifier: Any | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "OperatorHandles":
        """The handles among an ingress constructor's kwargs (named as in ``operator_deployments``)."""
        return cls(embeddings=kwargs.get(EMBEDDINGS_ARG), classifier=kwargs.get(CLASSIFIER_ARG))


@dataclass
class Operator:
    """What the operator loop plugs into the OpenAI app, and what must be closed."""

    policies: tuple[RequestPolicy, ...] = ()
    stream_hooks: tuple[StreamHook, ...] = ()
    routers: tuple[APIRouter, ...] = ()
    components: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Flush and close the feedback store (call on replica shutdown)."""
        store = self.components.get("feedback_store")
        if store is not None:
            store.close()


@dataclass(frozen=True)
class RouteDeps:
    """What guards the operator's routes: FastAPI dependencies and the gateway's route guard."""

    dependencies: Sequence[Any] = ()
    guard: Any | None = None


def operator_deployments(settings: Settings) -> dict[str, Any]:
    """Bound deployments to pass as keyword args of the model (ingress) deployment's ``bind``."""
    apps: dict[str, Any] = {}
    if settings.embeddings.enabled:
        from serving.embeddings.deployment import embeddings_app

        apps[EMBEDDINGS_ARG] = embeddings_app(settings.embeddings, settings.privacy)
    if settings.moderation.enabled and settings.moderation.classifier.enabled:
        from serving.moderation.classifier import classifier_app

        apps[CLASSIFIER_ARG] = classifier_app(settings.moderation.classifier, settings.privacy)
    return apps


def build_operator(
    settings: Settings,
    engine: Engine,
    *,
    handles: OperatorHandles | None = None,
    embedder: Any | None = None,
    classifier: Any | None = None,
    route_dependencies: Sequence[Any] = (),
    route_guard: Any | None = None,
) -> Operator:
    """Policies, stream hooks and routers of the enabled operator features.

    ``embedder`` / ``classifier`` override the handles (in-process objects for tests).
    ``route_dependencies`` (FastAPI dependencies) and ``route_guard`` (a
    ``serving.api.common.guard.RouteGuard``: the gateway's policies) guard the extra routes.
    """
    handles = handles or OperatorHandles()
    deps = RouteDeps(route_dependencies, route_guard)
    op = Operator()
    install_redaction(settings.privacy)  # the replica did already; idempotent (in-process apps, tests)
    policies: list[RequestPolicy] = []
    hooks: list[StreamHook] = []
    routers: list[APIRouter] = []

    if settings.context.policy != "off":
        try:
            counter = engine_token_counter(engine)
        except TypeError:
            logger.warning("the engine cannot count prompt tokens; context.policy is not applied")
        else:
            policies.append(
                ContextWindowPolicy(settings.context, max_model_len=engine.info.max_model_len, count_tokens=counter)
            )
    if settings.moderation.enabled:
        _moderation(settings, engine, handles, classifier, deps, op, policies, hooks, routers)
    if settings.feedback.enabled:
        _feedback(settings, deps, op, hooks, routers)
    if settings.privacy.audit.enabled:
        from serving.privacy.audit import AuditLog
        from serving.privacy.audit_hook import AuditStreamHook

        hooks.append(AuditStreamHook(AuditLog.from_settings(settings.privacy.audit)))
    if settings.embeddings.enabled:
        _embeddings(settings, handles, embedder, deps, op, routers)
    op.policies, op.stream_hooks, op.routers = tuple(policies), tuple(hooks), tuple(routers)
    return op


def _moderation(settings, engine, handles, classifier, deps, op, policies, hooks, routers) -> None:  # type: ignore[no-untyped-def]
    from serving.moderation.api_router import build_router
    from serving.moderation.classifier import HandleClassifier
    from serving.moderation.input_policy import InputModerationPolicy
    from serving.moderation.metrics import ModerationMetrics
    from serving.moderation.policy import ModerationPolicy
    from serving.moderation.service import ModerationService
    from serving.moderation.stream_hook import OutputModerationHook

    cfg = settings.moderation
    if classifier is None and handles.classifier is not None:
        classifier = HandleClassifier(handles.classifier)
    if cfg.classifier.enabled and classifier is None:
        logger.warning("moderation.classifier is enabled but no classifier deployment was bound; rules only")
    policy = ModerationPolicy(cfg, classifier=classifier, metrics=ModerationMetrics(engine.info.id))
    op.components["moderation_policy"] = policy
    if cfg.check_input:
        policies.append(InputModerationPolicy(policy))
    if cfg.check_output:
        hooks.append(OutputModerationHook(policy))
    routers.append(build_router(ModerationService(policy), dependencies=deps.dependencies, guard=deps.guard))


def _feedback(settings, deps, op, hooks, routers) -> None:  # type: ignore[no-untyped-def]
    from serving.feedback.api_router import build_router
    from serving.feedback.metrics import FeedbackMetrics
    from serving.feedback.recorder import ResponseRecorderHook
    from serving.feedback.service import FeedbackService
    from serving.feedback.store import FeedbackStore

    cfg = settings.feedback
    store = FeedbackStore(
        cfg.database_url,
        flush_interval_s=cfg.flush_interval_s,
        max_pending=cfg.max_pending,
        retention_days=cfg.response_retention_days,
        password_file=cfg.database_password_file,
    ).start()
    metrics = FeedbackMetrics()
    op.components["feedback_store"] = store
    op.components["feedback_metrics"] = metrics
    hooks.append(
        ResponseRecorderHook(
            store,
            model_version=settings.model.version,
            metrics=metrics,
            store_conversations=cfg.store_conversations,
            redact=redact,
        )
    )
    routers.append(build_router(FeedbackService(cfg, store, metrics), dependencies=deps.dependencies, guard=deps.guard))


def _embeddings(settings, handles, embedder, deps, op, routers) -> None:  # type: ignore[no-untyped-def]
    from serving.embeddings.api_router import build_router
    from serving.embeddings.client import HandleEmbedder
    from serving.embeddings.service import EmbeddingsService

    if embedder is None and handles.embeddings is not None:
        embedder = HandleEmbedder(handles.embeddings)
    if embedder is None:
        logger.warning("embeddings are enabled but no embeddings deployment was bound; /v1/embeddings is off")
        return
    op.components["embedder"] = embedder
    routers.append(
        build_router(EmbeddingsService(settings.embeddings, embedder), dependencies=deps.dependencies, guard=deps.guard)
    )
