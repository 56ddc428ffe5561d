"""The logic behind ``POST /v1/moderations``: the same policy as the request path."""

from __future__ import annotations

from serving.core.protocol import new_id
from serving.errors import InvalidRequestError, ModelNotFoundError
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
        texts = body.texts()
        self._require_checkable(texts, body.params())
        verdicts = await self.policy.check_all(texts, stage=API)
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

    def _require_checkable(self, texts: list[str], params: list[str]) -> None:
        """Refuse (400) inputs too long to check: all together, then each one."""
        total, limit = sum(len(t) for t in texts), self.policy.settings.max_request_chars
        if total > limit:
            raise InvalidRequestError(
                f"The inputs are too long: {total} characters in all (at most {limit} per request).",
                param="input",
                code="input_too_long",
            )
        for text, param in zip(texts, params):
            self.policy.require_checkable(text, param=param)
