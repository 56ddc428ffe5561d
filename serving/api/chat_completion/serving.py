"""Chat completions: wire model -> engine request -> response or SSE stream."""

from __future__ import annotations

from typing import AsyncIterator

from serving.api.chat_completion.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChoiceLogprobs,
    DeltaMessage,
    TokenLogprobEntry,
    TopLogprobEntry,
)
from serving.core.pipeline import Generation, GenerationPipeline
from serving.core.protocol import now, usage
from serving.api.common.sampling import include_usage, note_client_request_id, sampling_options
from serving.core.sse import DONE, sse_error, sse_event
from serving.engine.protocol import GenerateRequest, SamplingDefaults, TokenLogprob
from serving.errors import ServingError
from serving.core.context import RequestContext

ROUTE = "/v1/chat/completions"


def to_generate_request(
    body: ChatCompletionRequest, request_id: str, defaults: SamplingDefaults = SamplingDefaults()
) -> GenerateRequest:
    """The engine request of a chat completion body, the model's ``defaults`` filling omissions."""
    json_schema = None
    json_object = False
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_schema":
        json_schema = fmt.json_schema.schema_ or {"type": "object"}
    elif fmt is not None and fmt.type == "json_object":
        json_object = True
    logprobs = None
    if body.logprobs:
        logprobs = body.top_logprobs or 0
    sampling = sampling_options(
        body,
        defaults=defaults,
        max_tokens=body.output_limit(),
        default_max_tokens=defaults.max_tokens,
        logprobs=logprobs,
        json_schema=json_schema,
        json_object=json_object,
    )
    messages = tuple(m.for_template() for m in body.messages)
    return GenerateRequest(
        request_id=request_id,
        sampling=sampling,
        messages=messages,
        chat_template=body.template_options(),
        priority=body.priority,
    )


def logprob_entries(logprobs: list[TokenLogprob] | None) -> list[TokenLogprobEntry]:
    """OpenAI chat ``logprobs.content`` entries."""
    return [
        TokenLogprobEntry(
            token=lp.token,
            logprob=lp.logprob,
            bytes=list(lp.token.encode("utf-8")),
            top_logprobs=[
                TopLogprobEntry(token=t.token, logprob=t.logprob, bytes=list(t.token.encode("utf-8")))
                for t in lp.top
            ],
        )
        for lp in logprobs or ()
    ]


class OpenAIServingChat:
    """Serves ``POST /v1/chat/completions`` on a generation pipeline."""

    def __init__(self, pipeline: GenerationPipeline) -> None:
        self.pipeline = pipeline

    async def create(
        self, body: ChatCompletionRequest, ctx: RequestContext
    ) -> ChatCompletionResponse | AsyncIterator[str]:
        """A whole response, or (``stream=True``) an iterator of SSE events."""
        defaults = self.pipeline.engine.info.sampling_defaults
        note_client_request_id(body, ctx)
        generation = await self.pipeline.start(ctx, lambda: to_generate_request(body, ctx.response_id, defaults))
        if body.stream:
            return self._stream(body, ctx, generation)
        return await self._collect(body, ctx, generation)

    async def _collect(
        self, body: ChatCompletionRequest, ctx: RequestContext, generation: Generation
    ) -> ChatCompletionResponse:
        got = await generation.collect(body.n)
        return ChatCompletionResponse(
            id=ctx.response_id,
            created=now(),
            model=ctx.model,
            choices=[
                ChatCompletionChoice(
                    index=i,
                    message=ChatCompletionMessage(content=got.texts[i]),
                    logprobs=ChoiceLogprobs(content=logprob_entries(got.logprobs[i])) if body.logprobs else None,
                    finish_reason=got.finish[i],
                )
                for i in range(body.n)
            ],
            usage=usage(generation.prompt_tokens, generation.completion_tokens),
        )

    async def _stream(
        self, body: ChatCompletionRequest, ctx: RequestContext, generation: Generation
    ) -> AsyncIterator[str]:
        created = now()
        with_usage = include_usage(body)
        # OpenAI sends "usage": null on every chunk only when include_usage is set.
        chunk_exclude = {"system_fingerprint"} if with_usage else {"system_fingerprint", "usage"}

        def chunk(index: int, delta: DeltaMessage, finish: str | None = None, lp: list[TokenLogprob] | None = None) -> str:
            return sse_event(
                ChatCompletionChunk(
                    id=ctx.response_id,
                    created=created,
                    model=ctx.model,
                    choices=[
                        ChatCompletionChunkChoice(
                            index=index,
                            delta=delta,
                            logprobs=ChoiceLogprobs(content=logprob_entries(lp)) if body.logprobs and lp else None,
                            finish_reason=finish,
                        )
                    ],
                ).model_dump_json(exclude=chunk_exclude)
            )

        outputs = generation.outputs()
        try:
            for index in range(body.n):
                yield chunk(index, DeltaMessage(role="assistant", content=""))
            async for out in outputs:
                for choice in out.choices:
                    if choice.text or choice.logprobs:
                        yield chunk(choice.index, DeltaMessage(content=choice.text), lp=choice.logprobs)
                    reason = choice.finish_reason
                    if reason is not None:
                        yield chunk(choice.index, DeltaMessage(), finish=reason)
            if with_usage:
                yield sse_event(
                    ChatCompletionChunk(
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
