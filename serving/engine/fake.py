"""A deterministic engine for fast unit tests at the engine seam (never the real-path proof).

It "tokenizes" on whitespace, answers with a fixed script of words (its end is the
end of sequence), honours max_tokens, stop strings, n, logprobs, ignore_eos, min_tokens
and the context window, and can be told to
fail or stall, so every branch of the HTTP layer can be driven without vLLM.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import AsyncIterator

from serving.engine.protocol import (
    ChoiceDelta,
    Detokenized,
    EngineLoad,
    GenerateOutput,
    GenerateRequest,
    ModelInfo,
    SamplingDefaults,
    TokenLogprob,
    TopLogprob,
)
from serving.engine.special_tokens import check_messages
from serving.errors import ContextLengthExceededError, EngineError, InvalidRequestError, ServiceUnavailableError


_START, _END = 1, 2  # the per-message markers of the fake chat template


def _word_id(word: str) -> int:
    return 100 + zlib.crc32(word.encode("utf-8", "surrogatepass")) % 50_000


@dataclass
class FakeEngineConfig:
    """How the fake engine behaves."""

    model_id: str = "fake-model"
    max_model_len: int = 128
    reply: tuple[str, ...] = ("Hello", " from", " the", " fake", " engine", ".")
    token_delay_s: float = 0.0
    fail_after_tokens: int | None = None  # raise EngineError after this many tokens
    abort_after_tokens: int | None = None  # end every choice with finish reason "abort" (the engine's own abort)
    healthy: bool = True
    sampling_defaults: SamplingDefaults = field(default_factory=SamplingDefaults)
    special_tokens: tuple[str, ...] = ()  # the "tokenizer's" special-token texts, refused in messages


@dataclass
class FakeEngine:
    """Implements ``serving.engine.protocol.Engine`` without a model."""

    config: FakeEngineConfig = field(default_factory=FakeEngineConfig)
    aborted: list[str] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    started: bool = False
    requests: list[GenerateRequest] = field(default_factory=list)  # every generate() call, in order
    tokenize_calls: int = 0  # tokenizations: tokenize() calls, and generate() without prompt_token_ids
    _words: dict[int, str] = field(default_factory=dict, repr=False)  # the ids of prompt words seen

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            id=self.config.model_id,
            max_model_len=self.config.max_model_len,
            created=0,
            sampling_defaults=self.config.sampling_defaults,
        )

    async def start(self) -> None:
        self.started = True

    def token_ids(self, request: GenerateRequest) -> tuple[int, ...]:
        """The fake tokenization: one id per whitespace word of the prompt, or per message
        a start marker, a role id, its words and an end marker (3 ids of overhead).

        Ids are deterministic (a CRC of the word), so equal texts give equal ids. Messages
        spelling a configured special token are refused, as the vLLM adapter does. A test
        helper: not counted in ``tokenize_calls``.
        """
        if request.prompt is not None:
            words = request.prompt.split()
            self._words.update((_word_id(w), w) for w in words)
            return tuple(_word_id(w) for w in words)
        check_messages(request.messages or (), self.config.special_tokens)
        ids: list[int] = []
        for m in request.messages or ():
            ids += [_START, _word_id(m.get("role", "")), *(_word_id(w) for w in m["content"].split()), _END]
        return tuple(ids)

    def count_tokens(self, request: GenerateRequest) -> int:
        """Whitespace tokens of the prompt, or of every message plus 3 per message (sync test helper)."""
        return len(self.token_ids(request))

    async def tokenize(self, request: GenerateRequest) -> tuple[int, ...]:
        self.tokenize_calls += 1
        await asyncio.sleep(0)  # a real engine awaits its tokenizer thread (or the model replica)
        return self.token_ids(request)

    async def count_prompt_tokens(self, request: GenerateRequest) -> int:
        if request.prompt_token_ids is not None:
            return len(request.prompt_token_ids)
        return len(await self.tokenize(request))

    async def detokenize(self, token_ids: tuple[int, ...]) -> Detokenized:
        """Words this engine has tokenized (ids it never made are outside its vocabulary)."""
        await asyncio.sleep(0)
        words = []
        for token_id in token_ids:
            if token_id not in self._words:
                raise InvalidRequestError(f"token id {token_id} is not in the model's vocabulary", param="tokens")
            words.append(self._words[token_id])
        return Detokenized(text=" ".join(words), tokens=tuple(words))

    def _prompt_ids(self, request: GenerateRequest) -> tuple[int, ...]:
        """What generate feeds: the request's ids (checked against its text: stale ids carried
        past a rewrite of the messages are a bug this engine catches), else its own tokenization."""
        if request.prompt_token_ids is None:
            self.tokenize_calls += 1
            return self.token_ids(request)
        if request.prompt_token_ids != self.token_ids(request):
            raise EngineError("prompt_token_ids do not match the request's prompt (stale ids)")
        return request.prompt_token_ids

    def _script(self, request: GenerateRequest) -> list[str]:
        if request.sampling.json_schema is not None or request.sampling.json_object:
            return [json.dumps({"answer": "fake"})]
        return list(self.config.reply)

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateOutput]:
        self.requests.append(request)
        if not self.config.healthy:
            raise ServiceUnavailableError("fake engine is down")
        prompt_tokens = len(self._prompt_ids(request))
        room = self.config.max_model_len - prompt_tokens
        wanted = request.sampling.max_tokens
        if room <= 0 or (wanted is not None and wanted > room):
            raise ContextLengthExceededError(
                f"This model's maximum context length is {self.config.max_model_len} tokens; "
                f"the prompt has {prompt_tokens} tokens and {wanted} output tokens were requested.",
                param="messages" if request.messages is not None else "prompt",
            )
        limit = request.sampling.output_tokens(room)
        self.running.add(request.request_id)
        try:
            first = True
            script = self._script(request)
            states = [{"emitted": 0, "text": "", "done": False} for _ in range(request.sampling.n)]
            step = 0
            while not all(s["done"] for s in states):
                if self.config.token_delay_s:
                    await asyncio.sleep(self.config.token_delay_s)
                else:
                    await asyncio.sleep(0)
                if self.config.fail_after_tokens is not None and step >= self.config.fail_after_tokens:
                    raise EngineError("fake engine failure")
                if self.config.abort_after_tokens is not None and step >= self.config.abort_after_tokens:
                    yield GenerateOutput(
                        prompt_tokens=prompt_tokens,
                        choices=[ChoiceDelta(index=i, text="", num_tokens=0, finish_reason="abort") for i, s in enumerate(states) if not s["done"]],
                    )
                    return
                deltas = [self._advance(i, s, script, limit, request) for i, s in enumerate(states) if not s["done"]]
                yield GenerateOutput(
                    prompt_tokens=prompt_tokens,
                    choices=deltas,
                    queue_time_s=0.0 if first else None,
                )
                first = False
                step += 1
        finally:
            self.running.discard(request.request_id)

    def _advance(
        self, index: int, state: dict, script: list[str], limit: int, request: GenerateRequest
    ) -> ChoiceDelta:
        sampling = request.sampling

        def ends(emitted: int) -> bool:
            """The script's end is the fake's end of sequence; ignore_eos and min_tokens go on past it."""
            return emitted >= len(script) and not (sampling.ignore_eos or emitted < sampling.min_tokens)

        token = "" if ends(state["emitted"]) else script[state["emitted"] % len(script)]
        state["emitted"] += 1
        eos = ends(state["emitted"])
        finish = None
        text = token
        for stop in request.sampling.stop:
            cut = (state["text"] + token).find(stop)
            if cut >= 0:
                text = (state["text"] + token)[:cut][len(state["text"]):]
                finish = "stop"
                break
        state["text"] += text
        if finish is None:
            if eos:
                finish = "stop"
            elif state["emitted"] >= limit:
                finish = "length"
        if state["emitted"] >= limit and finish is None:
            finish = "length"
        state["done"] = finish is not None
        logprobs = None
        if request.sampling.logprobs is not None:
            top = tuple(TopLogprob(token=t, logprob=-0.5 - i) for i, t in enumerate([token, "x", "y"][: request.sampling.logprobs]))
            logprobs = [TokenLogprob(token=token, logprob=-0.5, top=top)]
        return ChoiceDelta(index=index, text=text, num_tokens=1, finish_reason=finish, logprobs=logprobs)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)
        self.running.discard(request_id)

    async def check_health(self) -> None:
        if not self.config.healthy:
            raise ServiceUnavailableError("fake engine is down")

    def load(self) -> EngineLoad:
        return EngineLoad(running=len(self.running), waiting=0, max_running=64)

    async def shutdown(self) -> None:
        self.started = False

    def now(self) -> float:
        """Monotonic clock (a seam for tests)."""
        return time.monotonic()
