"""Text completions: wire model -> engine request -> response or SSE stream."""

from __future__ import annotations

from typing import AsyncIterator

from serving.core.pipeline import Generation, GenerationPipeline
from serving.core.protocol import now, usage
from serving.api.common.sampling import include_usage, note_client_request_id, sampling_options
from serving.core.sse import DONE, sse_error, sse_event
from serving.api.completion.protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)
from serving.engine.protocol import GenerateRequest, SamplingDefaults, TokenLogprob
from serving.errors import InvalidRequestError, ServingError
from serving.core.context import RequestContext

ROUTE = "/v1/completions"


def to_generate_request(
    body: CompletionRequest, request_id: str, defaults: SamplingDefaults = SamplingDefaults()
) -> GenerateRequest:
    """The engine request of a completions body (max_tokens keeps OpenAI's default of 16)."""
    if body.best_of is not None and body.best_of != body.n:
        raise InvalidRequestError("best_of other than n is not supported", param="best_of")
    if body.echo and body.logprobs is not None:
        raise InvalidRequestError("echo together with logprobs is not supported", param="echo")
    sampling = sampling_options(body, defaults=defaults, max_tokens=body.max_tokens, logprobs=body.logprobs)
    return GenerateRequest(request_id=request_id, sampling=sampling, prompt=body.prompt_text(), priority=body.priority)


class _LogprobsBuilder:
    """Accumulates OpenAI's legacy logprobs layout for one choice."""

    def __init__(self) -> None:
        self.offset = 0

    def build(self, logprobs: list[TokenLogprob] | None) -> CompletionLogprobs:
        entries = logprobs or []
        offsets = []
        for lp in entries:
            offsets.append(self.offset)
            self.offset += len(lp.token)
        return CompletionLogprobs(
            tokens=[lp.token for lp in entries],
            token_logprobs=[lp.logprob for lp in entries],
            top_logprobs=[{t.token: t.logprob for t in lp.top} for lp in entries],
            text_offset=offsets,
        )


class OpenAIServingCompletion:
    """Serves ``POST /v1/completions`` on a generation pipeline."""

    def __init__(self, pipeline: GenerationPipeline) -> None:
        self.pipeline = pipeline

    async def create(
        self, body: CompletionRequest, ctx: RequestContext
    ) -> CompletionResponse | AsyncIterator[str]:
        """A whole response, or (``stream=True``) an iterator of SSE events."""
        defaults = self.pipeline.engine.info.sampling_defaults
        note_client_request_id(body, ctx)
        generation = await self.pipeline.start(ctx, lambda: to_generate_request(body, ctx.response_id, defaults))
        if body.stream:
            return self._stream(body, ctx, generation)
        return await self._collect(body, ctx, generation)

    async def _collect(self, body: CompletionRequest, ctx: RequestContext, generation: Generation) -> CompletionResponse:
        got = await generation.collect(body.n, prefix=body.prompt_text() if body.echo else "")
        return CompletionResponse(
            id=ctx.response_id,
            created=now(),
            model=ctx.model,
            choices=[
                CompletionChoice(
                    index=i,
                    text=got.texts[i],
                    logprobs=_LogprobsBuilder().build(got.logprobs[i]) if body.logprobs is not None else None,
                    finish_reason=got.finish[i],
                )
                for i in range(body.n)
            ],
            usage=usage(generation.prompt_tokens, generation.completion_tokens),
        )

    async def _stream(self, body: CompletionRequest, ctx: RequestContext, generation: Generation) -> AsyncIterator[str]:
        created = now()
        with_usage = include_usage(body)
        exclude = {"system_fingerprint"} if with_usage else {"system_fingerprint", "usage"}
        builders = [_LogprobsBuilder() for _ in range(body.n)]

        def chunk(index: int, text: str, finish: str | None, lp: list[TokenLogprob] | None) -> str:
            return sse_event(
                CompletionResponse(
                    id=ctx.response_id,
                    created=created,
                    model=ctx.model,
                    choices=[
                        CompletionChoice(
                            index=index,
                            text=text,
                            logprobs=builders[index].build(lp) if body.logprobs is not None else None,
                            finish_reason=finish,
                        )
                    ],
                ).model_dump_json(exclude=exclude)
            )

        outputs = generation.outputs()
        try:
            if body.echo:
                for index in range(body.n):
                    yield chunk(index, body.prompt_text(), None, None)
            async for out in outputs:
                for choice in out.choices:
                    reason = choice.finish_reason
                    if choice.text or choice.logprobs or reason is not None:
                        yield chunk(choice.index, choice.text, reason, choice.logprobs)
            if with_usage:
                yield sse_event(
                    CompletionResponse(
                        id=ctx.response_id,
                        created=created,
                        model=ctx.model,
                        choices=[],
                        usage=usage(generation.prompt_tokens, generation.completion_tokens),
                    ).model_dump_json(exclude={"system_fingerprint"})
                )
        except ServingError as exc:
            yield sse_error(exc)
        finally:
            await outputs.aclose()
        yield DONE
