"""The engine seam: what the HTTP layer needs from an inference engine, and nothing more.

Only ``serving.engine.vllm_engine`` imports vLLM. Engines raise errors from
``serving.errors`` (never yield error objects mixed with chunks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Mapping, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "content_filter", "abort"]


@dataclass(frozen=True)
class SamplingOptions:
    """Sampling parameters, already validated by the API layer."""

    max_tokens: int | None = None  # the client's; more than the context leaves is an error
    default_max_tokens: int | None = None  # when max_tokens is None: a cap within the context; None: up to it
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off (vLLM)
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None  # None: off; k >= 0: sampled token plus k alternatives
    json_schema: dict[str, Any] | None = None
    json_object: bool = False
    regex: str | None = None  # structured outputs: at most one of json_schema .. grammar
    choice: tuple[str, ...] | None = None
    grammar: str | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False

    def output_tokens(self, room: int) -> int:
        """Output tokens to generate with ``room`` left in the context (max_tokens already checked)."""
        if self.max_tokens is not None:
            return self.max_tokens
        return room if self.default_max_tokens is None else min(self.default_max_tokens, room)


@dataclass(frozen=True)
class SamplingDefaults:
    """The served model's values for sampling parameters a request leaves out (None: the API's)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    max_tokens: int | None = None  # the output cap of a chat completion without max_tokens


@dataclass(frozen=True)
class ChatTemplateOptions:
    """How the chat template renders the messages (vLLM's chat extensions)."""

    add_generation_prompt: bool = True  # end with the assistant's turn opening
    continue_final_message: bool = False  # leave the last (assistant) message open instead
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # extra template variables


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: a raw prompt (completions) or chat messages (chat).

    ``prompt_token_ids``, when set, are the engine's own tokenization of ``prompt`` /
    ``messages`` (``Engine.tokenize``: chat template applied), computed once per request
    (``serving.core.tokens.prompt_token_ids``); ``generate`` feeds them to the model
    as they are and does not tokenize again. They are a cache of the text, not part of
    the request's identity (left out of ``==`` and ``repr``): whoever rewrites ``prompt``
    or ``messages`` must set them to the new text's ids or to None
    (``dataclasses.replace`` copies them otherwise, and the engine would run stale ids).
    """

    request_id: str
    sampling: SamplingOptions
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    prompt_token_ids: tuple[int, ...] | None = field(default=None, repr=False, compare=False)
    chat_template: ChatTemplateOptions = field(default_factory=ChatTemplateOptions)
    priority: int = 0  # lower first, with the engine's priority scheduling (else only 0)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("exactly one of prompt or messages must be given")
        if self.prompt_token_ids is not None and not isinstance(self.prompt_token_ids, tuple):
            object.__setattr__(self, "prompt_token_ids", tuple(self.prompt_token_ids))


@dataclass(frozen=True)
class TopLogprob:
    """One candidate token at a position."""

    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """The sampled token at a position, with its top alternatives."""

    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass
class ChoiceDelta:
    """New output of one choice since the previous step."""

    index: int
    text: str
    num_tokens: int
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass
class GenerateOutput:
    """One step of a generation stream: deltas of the choices that advanced."""

    prompt_tokens: int
    choices: list[ChoiceDelta] = field(default_factory=list)
    # Wall-clock seconds the request waited in the engine before its first step,
    # when the engine knows it (first output only).
    queue_time_s: float | None = None


@dataclass(frozen=True)
class Detokenized:
    """Token ids as text: all of them decoded together, and each one's own token string."""

    text: str
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What clients and operators see of the served model."""

    id: str
    max_model_len: int
    created: int
    owned_by: str = "llm-serving"
    version: str = "1"
    root: str = ""
    sampling_defaults: SamplingDefaults = field(default_factory=SamplingDefaults)


@dataclass(frozen=True)
class EngineLoad:
    """What the engine reports about its load, for admission control."""

    running: int
    waiting: int
    max_running: int


@runtime_checkable
class Engine(Protocol):
    """An inference engine that streams deltas and can abort a request."""

    @property
    def info(self) -> ModelInfo:
        """The served model's id, context window and metadata."""
        ...

    async def start(self) -> None:
        """Load the model; return when the engine can generate."""
        ...

    def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateOutput]:
        """Stream deltas until every choice finished; raise on failure.

        Feeds ``request.prompt_token_ids`` when set (no second tokenization), else
        tokenizes the prompt / messages itself as ``tokenize`` does.

        Raises ContextLengthExceededError (prompt too long), InvalidRequestError
        (parameters the engine rejects), EngineError (generation failed) and
        ServiceUnavailableError (the engine is dead). Closing the iterator early
        aborts the request in the engine.
        """
        ...

    async def tokenize(self, request: GenerateRequest) -> tuple[int, ...]:
        """The prompt token ids of ``request`` exactly as ``generate`` would feed them
        (chat template applied to messages), tokenized off the event loop.

        Raises what ``generate`` raises for input the tokenizer refuses: InvalidRequestError
        (e.g. special-token text in a message, a template refusing the conversation),
        EngineError (the model's template is broken), ServiceUnavailableError.
        """
        ...

    async def count_prompt_tokens(self, request: GenerateRequest) -> int:
        """Tokens the prompt (or rendered chat) of ``request`` takes: its
        ``prompt_token_ids`` when set, else the length of ``tokenize``."""
        ...

    async def detokenize(self, token_ids: tuple[int, ...]) -> Detokenized:
        """The text of ``token_ids`` and each id's token string, off the event loop.

        Raises InvalidRequestError for an id outside the vocabulary, ServiceUnavailableError.
        """
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a running request and free its resources (no-op if unknown)."""
        ...

    async def check_health(self) -> None:
        """Return if the engine can generate; raise ServiceUnavailableError if not."""
        ...

    def load(self) -> EngineLoad:
        """Current running/waiting requests, for admission control."""
        ...

    async def shutdown(self) -> None:
        """Stop the engine and release its processes."""
        ...
