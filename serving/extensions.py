"""The one ordered list of the features that plug into the request path.

Order is behaviour: policies run in this order (the gateway's auth, hygiene, limits
and admission first; then context truncation, so input moderation judges what the
model will read); stream hooks wrap innermost first; observers see the result in
this order. Adding a feature: write its ``extension.py`` (a ``build(ctx) ->
Extension | None``) and add one line here. See docs/architecture.md.
"""

from __future__ import annotations

from serving.context import extension as context
from serving.core.extension import Feature
from serving.embeddings import extension as embeddings
from serving.feedback import extension as feedback
from serving.gateway import extension as gateway
from serving.moderation import extension as moderation
from serving.privacy import extension as privacy

FEATURES: tuple[Feature, ...] = (
    Feature("gateway", gateway.build, ingress_options=gateway.ingress_options),
    Feature("context", context.build, model_options=context.model_options),
    Feature("moderation", moderation.build, moderation.deployments),
    Feature("feedback", feedback.build),
    Feature("audit", privacy.build),
    Feature("embeddings", embeddings.build, embeddings.deployments),
)
