"""The moderation feature: input and output checks, ``/v1/moderations``, the classifier deployment."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from serving.core.extension import BuildContext, Extension

logger = logging.getLogger(__name__)

CLASSIFIER_HANDLE = "moderation_classifier"


def deployments(settings: Any) -> Mapping[str, Any]:
    """The classifier deployment, when the classifier is switched on."""
    cfg = settings.moderation
    if not (cfg.enabled and cfg.classifier.enabled):
        return {}
    from serving.moderation.classifier import classifier_app

    return {CLASSIFIER_HANDLE: classifier_app(cfg.classifier, settings.privacy)}


def build(ctx: BuildContext) -> Extension | None:
    """Input policy, output stream hook and the moderations route (``moderation.enabled``)."""
    cfg = ctx.settings.moderation
    if not cfg.enabled:
        return None
    from serving.moderation.api_router import build_router
    from serving.moderation.classifier import HandleClassifier
    from serving.moderation.input_policy import InputModerationPolicy
    from serving.moderation.metrics import ModerationMetrics
    from serving.moderation.policy import ModerationPolicy
    from serving.moderation.service import ModerationService
    from serving.moderation.stream_hook import OutputModerationHook

    classifier = ctx.overrides.get("classifier")
    if classifier is None and ctx.handles.get(CLASSIFIER_HANDLE) is not None:
        classifier = HandleClassifier(ctx.handles[CLASSIFIER_HANDLE])
    if cfg.classifier.enabled and classifier is None:
        logger.warning("moderation.classifier is enabled but no classifier deployment was bound; rules only")
    policy = ModerationPolicy(cfg, classifier=classifier, metrics=ModerationMetrics(ctx.engine.info.id))
    ext = Extension(components={"moderation_policy": policy})
    if cfg.check_input:
        ext.policies.append(InputModerationPolicy(policy))
    if cfg.check_output:
        ext.stream_hooks.append(OutputModerationHook(policy))
    ext.routers.append(build_router(ModerationService(policy), guard=ctx.route_guard))
    return ext
