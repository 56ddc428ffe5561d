"""The vLLM adapter: the only module that imports ``vllm``.

It renders chat templates and tokenizes with the engine's own tokenizer (so the
context-window check and usage counts are exact) on one tokenizer thread, never on the
event loop (``tokenize``; a request carrying ``prompt_token_ids`` is fed them as they
are, not tokenized again), streams ``RequestOutputKind.DELTA``
outputs (vLLM merges deltas while a consumer is busy, so a slow stream coalesces
instead of queueing), and translates vLLM's exceptions into ``serving.errors``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator

from serving.config.settings import EngineSettings, GenerationDefaults
from serving.engine.protocol import (
    ChoiceDelta,
    Detokenized,
    EngineLoad,
    GenerateOutput,
    GenerateRequest,
    ModelInfo,
    SamplingOptions,
    TokenLogprob,
    TopLogprob,
)
from serving.engine.special_tokens import check_messages, special_token_strings
from serving.errors import (
    ContextLengthExceededError,
    EngineError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from serving.engine.generation_defaults import sampling_defaults

logger = logging.getLogger(__name__)

_GIB = 1024**3
# The longest tokenizer / chat-template message quoted in a 400 (it may quote the input).
_MAX_DETAIL_CHARS = 300


def engine_environment(settings: EngineSettings) -> dict[str, str]:
    """Environment variables vLLM reads at engine creation, derived from settings."""
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "1" if settings.multiprocessing else "0"}
    if settings.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(settings.kv_cache_gib)))
    return env


def engine_args(model_path: Path, served_name: str, settings: EngineSettings) -> Any:
    """vLLM ``AsyncEngineArgs`` from our typed engine settings."""
    from vllm.config.structured_outputs import StructuredOutputsConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    kwargs: dict[str, Any] = dict(
        model=str(model_path),
        served_model_name=served_name,
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        dtype=settings.resolved_dtype,
        enforce_eager=settings.resolved_enforce_eager,
        enable_prefix_caching=settings.enable_prefix_caching,
        tensor_parallel_size=settings.tensor_parallel_size,
        pipeline_parallel_size=settings.pipeline_parallel_size,
        seed=settings.seed,
        scheduling_policy=settings.scheduling_policy,
        disable_log_stats=False,
        enable_log_requests=False,
        generation_config="auto",
        # Compact JSON for response_format (as OpenAI returns): small models otherwise
        # spend their token budget on whitespace the grammar allows.
        structured_outputs_config=StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
    )
    if settings.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = settings.max_num_batched_tokens
    if settings.distributed_executor_backend is not None:
        # Several GPUs: vLLM's workers are Ray actors in the replica's placement group.
        kwargs["distributed_executor_backend"] = settings.distributed_executor_backend
    if settings.device == "cpu":
        kwargs["kv_cache_memory_bytes"] = int(settings.kv_cache_gib * _GIB)
    else:
        kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization  # sizes the KV cache
    return AsyncEngineArgs(**kwargs)


def engine_config(args: Any) -> Any:
    """vLLM's ``VllmConfig`` of ``args``; with the Ray executor, bound to the replica's
    placement group (as Ray Serve LLM does), which the engine core process cannot look up
    itself: it is not a Ray worker."""
    config = args.create_engine_config()
    if args.distributed_executor_backend == "ray":
        from ray.util import get_current_placement_group

        group = get_current_placement_group()
        if group is None:
            raise RuntimeError(
                "the engine spans several GPUs but the replica has no placement group "
                "(serving.ray_serve.placement builds it; start it through the Serve app)"
            )
        config.parallel_config.placement_group = group
    return config


# The Retry-After of a failed or restarting engine's 503 (the same in both places): while the
# engine restarts, its 503s answer at once, so an early retry costs the client little.
ENGINE_RETRY_AFTER = {"Retry-After": "5"}


class VLLMEngine:
    """``serving.engine.protocol.Engine`` over vLLM's ``AsyncLLM``."""

    def __init__(
        self,
        model_path: Path,
        *,
        model_id: str,
        settings: EngineSettings,
        generation: GenerationDefaults = GenerationDefaults(),
        version: str = "1",
        owned_by: str = "llm-serving",
        ray_metrics: bool = False,
    ) -> None:
        """Describe the model at ``model_path`` (its sampling defaults read now); ``start`` loads it."""
        self._path = Path(model_path)
        self._settings = settings
        self._ray_metrics = ray_metrics
        self._engine: Any = None
        self._tokenizer: Any = None
        # A dead engine core is restarted here, in the replica (``settings.max_restarts`` times),
        # while requests get a quick 503; Serve's health check fails only when that is not possible.
        self._restart_task: asyncio.Task[None] | None = None
        self._restarts = 0
        self._restart_failed: str | None = None
        self._special_tokens: tuple[Any, tuple[str, ...]] | None = None  # (tokenizer, its special tokens)
        # Chat templates and encoding run here, off the event loop. One thread, as vLLM's own
        # renderer pool defaults to (renderer_num_workers=1): a Rust tokenizer shared by
        # threads can fail ("Already borrowed"), and the machine's cores serve the model.
        self._tokenizer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenizer")
        self._load = EngineLoad(running=0, waiting=0, max_running=settings.max_num_seqs)
        self._info = ModelInfo(
            id=model_id,
            max_model_len=settings.max_model_len,
            created=int(time.time()),
            owned_by=owned_by,
            version=version,
            root=str(self._path),
            sampling_defaults=sampling_defaults(self._path, generation),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def start(self) -> None:
        """Load the model. The process environment must already hold ``engine_environment``
        (vLLM reads it at engine creation): the replica bootstrap sets it."""
        from vllm.v1.engine.async_llm import AsyncLLM

        loggers: list[Any] = [self._load_tracker_factory()]
        if self._ray_metrics:
            from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

            loggers.append(RayPrometheusStatLogger)
        args = engine_args(self._path, self._info.id, self._settings)
        started = time.monotonic()

        def create() -> Any:  # blocks for the whole load: off the event loop
            if args.distributed_executor_backend == "ray":
                return AsyncLLM.from_vllm_config(
                    engine_config(args),
                    stat_loggers=loggers,
                    enable_log_requests=args.enable_log_requests,
                    disable_log_stats=args.disable_log_stats,
                )
            return AsyncLLM.from_engine_args(args, stat_loggers=loggers)

        # Created in a worker thread, AsyncLLM starts its output handler on the first request,
        # in this (the replica's) event loop.
        engine = await asyncio.to_thread(create)
        self._tokenizer = engine.get_tokenizer()
        self._engine = engine
        logger.info("engine ready in %.1fs", time.monotonic() - started)

    # -- failure -------------------------------------------------------------

    @property
    def _can_restart(self) -> bool:
        """In-process restarts are for a single engine core process (the Ray executor's
        workers belong to the replica's placement group: Serve replaces the replica)."""
        return self._settings.distributed_executor_backend != "ray" and self._restarts < self._settings.max_restarts

    def _engine_died(self) -> None:
        """The engine core is gone: restart it in the background when allowed."""
        if self._restart_task is not None or self._restart_failed is not None or not self._can_restart:
            return
        self._restarts += 1
        logger.error(
            "the engine core died; restarting it in this replica (%d of at most %d)",
            self._restarts,
            self._settings.max_restarts,
        )
        self._restart_task = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        dead, self._engine = self._engine, None
        try:
            if dead is not None:
                await asyncio.to_thread(dead.shutdown)
        except Exception:
            logger.warning("shutting down the dead engine failed", exc_info=True)
        try:
            await self.start()
        except Exception as exc:
            self._restart_failed = f"{type(exc).__name__}: {exc}"
            logger.exception("the engine restart failed; the health check now fails")
        finally:
            self._restart_task = None

    def _unavailable(self) -> ServiceUnavailableError:
        if self._restart_task is not None:
            return ServiceUnavailableError(
                "The model's engine is restarting after a failure; retry shortly.",
                headers=ENGINE_RETRY_AFTER,
            )
        return ServiceUnavailableError("engine is dead")

    def _load_tracker_factory(self) -> Any:
        from vllm.v1.metrics.loggers import StatLoggerBase

        adapter = self

        class LoadTracker(StatLoggerBase):
            """Keeps the scheduler's latest running/waiting counts for admission control."""

            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                pass

            def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
                if scheduler_stats is not None:
                    adapter._load = EngineLoad(
                        running=scheduler_stats.num_running_reqs,
                        waiting=scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs,
                        max_running=adapter._settings.max_num_seqs,
                    )

            def log_engine_initialized(self) -> None:
                pass

        return LoadTracker

    # -- prompts -------------------------------------------------------------

    async def tokenize(self, request: GenerateRequest) -> tuple[int, ...]:
        """The token ids the engine will see for this request's prompt or messages,
        computed on the tokenizer thread (``encode_prompt``)."""
        if self._tokenizer is None:
            raise ServiceUnavailableError("engine not started")
        loop = asyncio.get_running_loop()
        return tuple(await loop.run_in_executor(self._tokenizer_pool, self.encode_prompt, request))

    def encode_prompt(self, request: GenerateRequest) -> list[int]:
        """The token ids the engine will see for this request's prompt or messages
        (blocking: ``tokenize`` runs it off the event loop).

        A chat template or tokenizer refusing the input is the request's fault (400 naming
        ``messages`` / ``prompt``); a template that does not even parse is the model's (500).
        A message spelling one of the tokenizer's special tokens is refused before the
        template runs (``serving.engine.special_tokens``): encoding the rendered text would
        make it a real control token.
        """
        from jinja2 import TemplateError, TemplateSyntaxError  # the chat templates' engine

        param = "messages" if request.messages is not None else "prompt"
        if request.messages is not None:
            check_messages(request.messages, self._special_token_strings())
        try:
            if request.messages is not None:
                template = request.chat_template
                text = self._tokenizer.apply_chat_template(
                    [dict(m) for m in request.messages],
                    add_generation_prompt=template.add_generation_prompt,
                    continue_final_message=template.continue_final_message,
                    tokenize=False,
                    **template.kwargs,
                )
            else:
                text = request.prompt or ""
            return list(self._tokenizer.encode(text, add_special_tokens=False))
        except TemplateSyntaxError as exc:
            raise EngineError(f"the model's chat template does not parse: {exc}") from exc
        except (TemplateError, ValueError, TypeError) as exc:
            detail = str(exc).strip() or type(exc).__name__
            if len(detail) > _MAX_DETAIL_CHARS:
                detail = detail[:_MAX_DETAIL_CHARS] + "…"
            raise InvalidRequestError(f"The {param} could not be tokenized: {detail}", param=param) from exc

    async def detokenize(self, token_ids: tuple[int, ...]) -> Detokenized:
        """The text of ``token_ids`` and their token strings, on the tokenizer thread."""
        if self._tokenizer is None:
            raise ServiceUnavailableError("engine not started")
        vocabulary = len(self._tokenizer)
        bad = next((i for i in token_ids if not 0 <= i < vocabulary), None)
        if bad is not None:
            raise InvalidRequestError(
                f"token id {bad} is not in the model's vocabulary (0 to {vocabulary - 1})", param="tokens"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._tokenizer_pool, self._decode, list(token_ids))

    def _decode(self, token_ids: list[int]) -> Detokenized:
        tokenizer = self._tokenizer
        return Detokenized(
            text=tokenizer.decode(token_ids), tokens=tuple(tokenizer.convert_ids_to_tokens(token_ids))
        )

    def _special_token_strings(self) -> tuple[str, ...]:
        """The current tokenizer's special-token texts (computed once per tokenizer)."""
        if self._special_tokens is None or self._special_tokens[0] is not self._tokenizer:
            self._special_tokens = (self._tokenizer, special_token_strings(self._tokenizer))
        return self._special_tokens[1]

    async def count_prompt_tokens(self, request: GenerateRequest) -> int:
        """How many tokens the prompt of ``request`` takes (its ids when it carries them)."""
        if request.prompt_token_ids is not None:
            return len(request.prompt_token_ids)
        return len(await self.tokenize(request))

    def _check_length(self, request: GenerateRequest, prompt_len: int) -> int:
        limit = self._info.max_model_len
        param = "messages" if request.messages is not None else "prompt"
        wanted = request.sampling.max_tokens
        if prompt_len >= limit or (wanted is not None and prompt_len + wanted > limit):
            asked = f" and {wanted} in the completion" if wanted is not None else ""
            raise ContextLengthExceededError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_len + (wanted or 0)} tokens ({prompt_len} in the {param}{asked}). "
                "Please reduce the length of the messages or completion.",
                param=param,
            )
        return request.sampling.output_tokens(limit - prompt_len)

    # -- generation ----------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateOutput]:
        from vllm.inputs import TokensPrompt

        engine = self._require_engine()
        # The ids the request path computed (its policies counted with them), else our own.
        carried = request.prompt_token_ids
        ids = list(carried if carried is not None else await self.tokenize(request))
        max_tokens = self._check_length(request, len(ids))
        params = self._sampling_params(request.sampling, max_tokens)
        if request.priority and self._settings.scheduling_policy != "priority":
            raise InvalidRequestError(
                "priority needs the engine's priority scheduling (model.engine.scheduling_policy: priority)",
                param="priority",
            )
        prompt_tokens = len(ids)
        first = True
        stream = engine.generate(
            TokensPrompt(prompt_token_ids=ids), params, request.request_id, priority=request.priority
        )
        try:
            async for out in _translated(stream, self._engine_died):
                yield GenerateOutput(
                    prompt_tokens=prompt_tokens,
                    choices=[self._delta(c, request.sampling) for c in out.outputs],
                    queue_time_s=_queue_time(out) if first else None,
                )
                first = False
        finally:
            await stream.aclose()

    def _sampling_params(self, sampling: SamplingOptions, max_tokens: int) -> Any:
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        structured = None
        if sampling.json_schema is not None:
            structured = StructuredOutputsParams(json=sampling.json_schema)
        elif sampling.json_object:
            structured = StructuredOutputsParams(json_object=True)
        elif sampling.regex is not None:
            structured = StructuredOutputsParams(regex=sampling.regex)
        elif sampling.choice is not None:
            structured = StructuredOutputsParams(choice=list(sampling.choice))
        elif sampling.grammar is not None:
            structured = StructuredOutputsParams(grammar=sampling.grammar)
        try:
            return SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
                min_p=sampling.min_p,
                repetition_penalty=sampling.repetition_penalty,
                seed=sampling.seed,
                stop=list(sampling.stop) or None,
                presence_penalty=sampling.presence_penalty,
                frequency_penalty=sampling.frequency_penalty,
                max_tokens=max_tokens,
                logprobs=sampling.logprobs,
                structured_outputs=structured,
                ignore_eos=sampling.ignore_eos,
                min_tokens=min(sampling.min_tokens, max_tokens),
                skip_special_tokens=sampling.skip_special_tokens,
                spaces_between_special_tokens=sampling.spaces_between_special_tokens,
                include_stop_str_in_output=sampling.include_stop_str_in_output,
                output_kind=RequestOutputKind.DELTA,
            )
        except VLLMClientError as exc:  # e.g. "n must be 1 when using greedy sampling"
            param = getattr(exc, "parameter", None)
            message = exc.args[0] if exc.args else str(exc)
            raise InvalidRequestError(f"Invalid sampling parameters: {message}", param=param) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"Invalid sampling parameters: {exc}") from exc

    def _delta(self, output: Any, sampling: SamplingOptions) -> ChoiceDelta:
        logprobs = None
        if sampling.logprobs is not None and output.logprobs is not None:
            logprobs = [
                _token_logprob(token_id, position, sampling.logprobs)
                for token_id, position in zip(output.token_ids, output.logprobs)
            ]
        return ChoiceDelta(
            index=output.index,
            text=output.text,
            num_tokens=len(output.token_ids),
            finish_reason=output.finish_reason,
            logprobs=logprobs,
        )

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:
            await self._engine.abort(request_id)

    async def check_health(self) -> None:
        """Raise when this replica cannot serve and will not recover by itself (Serve then
        replaces it); an engine restart under way is healthy."""
        if self._restart_failed is not None:
            raise ServiceUnavailableError(f"engine restart failed: {self._restart_failed}")
        if self._restart_task is not None:
            return
        try:
            engine = self._require_engine()
            await engine.check_health()
        except Exception as exc:  # vLLM raises EngineDeadError; anything else is as bad
            self._engine_died()
            if self._restart_task is not None:
                return
            raise ServiceUnavailableError(f"engine unhealthy: {exc}") from exc

    def load(self) -> EngineLoad:
        return self._load

    async def shutdown(self) -> None:
        if self._restart_task is not None:
            self._restart_task.cancel()
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
        self._tokenizer = None  # a late tokenize is "engine not started", not a dead pool's error
        self._tokenizer_pool.shutdown(wait=False, cancel_futures=True)

    def _require_engine(self) -> Any:
        if self._engine is not None and self._engine.errored:
            self._engine_died()
            raise self._unavailable()
        if self._engine is None:
            if self._restart_task is not None or self._restart_failed is not None:
                raise self._unavailable()
            raise ServiceUnavailableError("engine not started")
        return self._engine


async def _translated(stream: AsyncIterator[Any], died: Any) -> AsyncIterator[Any]:
    """vLLM's stream with its exceptions turned into ours (``died()`` when the engine is dead)."""
    from vllm.exceptions import VLLMClientError
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    try:
        async for out in stream:
            yield out
    except asyncio.CancelledError:
        raise
    except EngineDeadError as exc:
        died()
        raise ServiceUnavailableError("The model's engine failed; retry shortly.", headers=ENGINE_RETRY_AFTER) from exc
    except (VLLMClientError, ValueError) as exc:
        raise InvalidRequestError(str(exc)) from exc
    except EngineGenerateError as exc:
        raise EngineError(f"generation failed: {exc.__cause__!r}") from exc


def _token_logprob(token_id: int, position: dict[int, Any], top_k: int) -> TokenLogprob:
    sampled = position[token_id]
    ranked = sorted(position.items(), key=lambda item: item[1].logprob, reverse=True)[:top_k]
    return TokenLogprob(
        token=sampled.decoded_token or "",
        logprob=_finite(sampled.logprob),
        top=tuple(TopLogprob(token=lp.decoded_token or "", logprob=_finite(lp.logprob)) for _, lp in ranked),
    )


def _finite(value: float) -> float:
    """Logprobs of -inf are not JSON: clamp like OpenAI's -9999."""
    return max(value, -9999.0)


def _queue_time(output: Any) -> float | None:
    metrics = getattr(output, "metrics", None)
    if metrics is None or not getattr(metrics, "scheduled_ts", 0) or not getattr(metrics, "queued_ts", 0):
        return None
    return max(0.0, metrics.scheduled_ts - metrics.queued_ts)
