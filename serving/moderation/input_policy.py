"""Input moderation: a ``RequestPolicy`` that refuses blocked input with 400 content_filter."""

from __future__ import annotations

from serving.engine.protocol import GenerateRequest
from serving.errors import ContentFilterError
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.moderation.metrics import INPUT
from serving.moderation.policy import ModerationPolicy


def request_text(request: GenerateRequest) -> str:
    """Every piece of text the model would read (all messages, or the prompt)."""
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.get("content", "") for m in request.messages or ())


class InputModerationPolicy:
    """Checks the engine request's text before the engine sees it."""

    def __init__(self, policy: ModerationPolicy) -> None:
        self.policy = policy

    async def before(self, ctx: RequestContext) -> GenerateRequest | None:
        """Raise ContentFilterError when the input is blocked (400 when too long to check); annotate."""
        if ctx.generate is None:
            return None
        text = request_text(ctx.generate)
        param = "messages" if ctx.generate.messages is not None else "prompt"
        self.policy.require_checkable(text, param=param)
        verdict = await self.policy.check(text, stage=INPUT)
        if verdict.blocked:
            ctx.annotations["moderation"] = "input_blocked"
            categories = ", ".join(verdict.blocked_categories)
            raise ContentFilterError(
                f"The input was blocked by the content policy (categories: {categories}).", param=param
            )
        ctx.annotations["moderation"] = "input_flagged" if verdict.flagged_categories else "passed"
        return None

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        """Nothing to account."""
