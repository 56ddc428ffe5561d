"""The conversation-context feature: fits long conversations into the context window, and
sticky routing of a conversation to one model replica (a Serve request router)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from serving.context.policy import ContextWindowPolicy
from serving.context.tokens import engine_token_counter
from serving.core.extension import BuildContext, Extension

logger = logging.getLogger(__name__)


def model_options(settings: Any) -> Mapping[str, Any]:
    """Sticky routing: the session-affinity request router on the model deployment (when on)."""
    config = settings.context.sticky_routing.request_router_config()
    return {} if config is None else {"request_router_config": config}


def build(ctx: BuildContext) -> Extension | None:
    """The context policy (``context.policy`` other than ``off``)."""
    settings = ctx.settings.context
    if settings.policy == "off":
        return None
    try:
        counter = engine_token_counter(ctx.engine)
    except TypeError:
        logger.warning("the engine cannot count prompt tokens; context.policy is not applied")
        return None
    policy = ContextWindowPolicy(settings, max_model_len=ctx.engine.info.max_model_len, count_tokens=counter)
    return Extension(policies=[policy])
