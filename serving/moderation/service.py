"""The logic behind ``POST /v1/moderations``: the same policy as the request path."""

from __future__ import annotations

import asyncio

from serving.api.common.protocol import new_id
from serving.errors import ModelNotFoundError
from serving.moderation.metrics import API
from serving.moderation.policy import ModerationPolicy
from serving.moderation.protocol import ModerationRequest, ModerationResponse, ModerationResult

# OpenAI's moderation model names, accepted as aliases of the served policy.
OPENAI_MODEL_ALIASES = frozenset(
    {"omni-moderation-latest", "text-moderation-latest", "text-moderation-stable"}
)


class ModerationService:
    """Classifies texts with the moderation policy."""

    def __init__(self, policy: ModerationPolicy) -> None:
        self.policy = policy
        self.model_name = policy.settings.model_name

    async def moderate(self, body: ModerationRequest) -> ModerationResponse:
        """One result per input, in order."""
        if body.model is not None and body.model != self.model_name and body.model not in OPENAI_MODEL_ALIASES:
            raise ModelNotFoundError(
                f"The moderation model `{body.model}` does not exist; this server serves "
                f"`{self.model_name}`.",
                param="model",
            )
        verdicts = await asyncio.gather(*(self.policy.check(t, stage=API) for t in body.texts()))
        results = []
        for verdict in verdicts:
            found = {d.category for d in verdict.detections if d.action != "off"}
            results.append(
                ModerationResult(
                    flagged=verdict.blocked,
                    categories={c: c in found for c in self.policy.categories},
                    category_scores=self.policy.scores(verdict),
                )
            )
        return ModerationResponse(id=new_id("modr"), model=self.model_name, results=results)
