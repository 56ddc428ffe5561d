"""Output moderation on streams: a sliding-window check as tokens arrive, and a clean cut.

Each choice's new text goes into a pending buffer. On every engine step the window
(the last released characters plus the pending ones) is matched against the rules and
PII detectors, and pending text is released to the client up to where a blocking one
could still match (``ModerationPolicy.hold_from``: a possible beginning of a match, or a
complete match touching the end, which more text could still undo: "kill" may become
"killer"). Ordinary text therefore goes out in the step it arrives; text that could start
a blocked phrase waits until more text rules the match out or completes it. The held text
is bounded: a possible match growing past ``window_chars`` releases its oldest characters
(a complete match is cut instead). ``holdback_chars`` (default 0) holds back that many
more characters. When the classifier is on, text is also released only after a
classifier pass over a window that contains it (every ``stream_stride_chars`` and at the end).

A step looks at the window only where a match not seen before could be
(``ModerationPolicy.match_stream``, resuming from the choice's ``StreamCursor``): blocking
matches from where ``hold_from`` said one could still start, flag-only ones from where
one could still end in the new text, and none of a category the stream already flagged.
A step therefore costs about its new text (plus any text held back), not the window.

A blocking match that can no longer change (text follows it, or the choice finished)
ends the choice with the safe text before the match and ``finish_reason="content_filter"``;
once every choice has ended the upstream stream is closed, which aborts the engine request.

Logprobs travel with their text: a token's logprob is released only once all of its
characters are, and dropped when any of them is cut. Tokens are placed on the text by
their strings when a delta's token strings spell its text exactly; otherwise (byte
tokens, a trimmed stop string) the delta's logprobs go out with its last character.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator

from serving.engine.protocol import ChoiceDelta, GenerateOutput, TokenLogprob
from serving.core.context import RequestContext
from serving.moderation.metrics import OUTPUT
from serving.moderation.policy import Detection, ModerationPolicy, StreamCursor

CONTENT_FILTER = "content_filter"


@dataclass
class _HeldLogprobs:
    """Logprobs waiting for their text: characters [start, end) of the choice's output."""

    start: int
    end: int
    logprobs: list[TokenLogprob]


@dataclass
class _ChoiceState:
    """The moderation state of one choice."""

    tail: str = ""  # released text, only the last window's worth
    pending: str = ""  # received, not yet released
    unclassified: int = 0  # characters appended since the last classifier pass
    done: bool = False
    released: int = 0  # characters released so far
    logprobs: list[_HeldLogprobs] = field(default_factory=list)  # of pending text, in order
    has_logprobs: bool = False  # the engine sends logprobs for this choice
    cursor: StreamCursor = field(default_factory=StreamCursor)  # where matching resumes (output indexes)

    def hold_logprobs(self, text: str, logprobs: list[TokenLogprob] | None) -> None:
        """Place a delta's logprobs on its text (appended after ``pending`` already grew)."""
        if logprobs is None:
            return
        self.has_logprobs = True
        start = self.released + len(self.pending) - len(text)
        if "".join(lp.token for lp in logprobs) != text:  # cannot place each token: the delta as one
            self.logprobs.append(_HeldLogprobs(start, start + len(text), list(logprobs)))
            return
        for lp in logprobs:
            self.logprobs.append(_HeldLogprobs(start, start + len(lp.token), [lp]))
            start += len(lp.token)

    def take_logprobs(self, everything: bool) -> list[TokenLogprob] | None:
        """The held logprobs whose text is released (all of them when ``everything``)."""
        out: list[TokenLogprob] = []
        while self.logprobs:
            held = self.logprobs[0]
            # A zero-width entry at the boundary belongs with the text after it.
            if not (everything or held.end < self.released or (held.end == self.released and held.start < held.end)):
                break
            out.extend(self.logprobs.pop(0).logprobs)
        return out if self.has_logprobs else None


class OutputModerationHook:
    """``StreamHook`` that checks output over a sliding window and cuts violating choices."""

    def __init__(self, policy: ModerationPolicy) -> None:
        self.policy = policy
        self.window = policy.settings.window_chars
        self.holdback = policy.settings.holdback_chars
        self.stride = policy.settings.classifier.stream_stride_chars

    def wrap(self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        """The moderated stream."""
        return _ModeratedStream(self, ctx).run(stream)

    @property
    def uses_classifier(self) -> bool:
        """Whether the classifier is consulted on streams."""
        return self.policy.classifier is not None


class _ModeratedStream:
    """One moderated generation (per-choice state, verdict accounting)."""

    def __init__(self, hook: OutputModerationHook, ctx: RequestContext) -> None:
        self.hook = hook
        self.ctx = ctx
        self.states: dict[int, _ChoiceState] = {}
        self.blocked: list[str] = []
        self.flagged: list[str] = []
        self.expected_choices = ctx.generate.sampling.n if ctx.generate is not None else 1

    async def run(self, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        prompt_tokens = 0
        try:
            async for out in stream:
                prompt_tokens = out.prompt_tokens
                choices = [await self._step(c) for c in out.choices if not self._state(c.index).done]
                yield GenerateOutput(prompt_tokens=out.prompt_tokens, choices=choices, queue_time_s=out.queue_time_s)
                if self.blocked and sum(s.done for s in self.states.values()) >= self.expected_choices:
                    return  # every choice ended; closing upstream aborts the engine request
            leftover = [(i, s) for i, s in sorted(self.states.items()) if s.pending and not s.done]
            if leftover:  # the engine ended without a finish reason: the held text is final
                yield GenerateOutput(prompt_tokens=prompt_tokens, choices=[self._drain(i, s) for i, s in leftover])
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            self._account()

    def _state(self, index: int) -> _ChoiceState:
        state = self.states.get(index)
        if state is None:  # not setdefault: that would build a state on every call
            state = self.states[index] = _ChoiceState()
        return state

    async def _step(self, choice: ChoiceDelta) -> ChoiceDelta:
        state = self._state(choice.index)
        state.pending += choice.text
        state.hold_logprobs(choice.text, choice.logprobs)
        state.unclassified += len(choice.text)
        finished = choice.finish_reason is not None
        window = state.tail + state.pending
        offset = len(state.tail)
        base = state.released - offset  # the output index of window[0]
        hits = self._blocking(self.hook.policy.match_stream(window, base, state.cursor, self.flagged), offset)
        # A match touching the end may still change ("kill" -> "killer"); one followed by text,
        # or at the finish, cannot.
        if hits and (finished or any(h.end < len(window) for h in hits)):
            return self._cut_before(state, choice, window, offset, hits)
        release = len(state.pending) if finished else self._releasable(state, window, base, offset)
        if hits and min(h.start for h in hits) - offset < release:
            return self._cut_before(state, choice, window, offset, hits)  # the window bound reached it
        if self.hook.uses_classifier and release > 0 and (finished or state.unclassified >= self.hook.stride):
            state.unclassified = 0
            found = await self.hook.policy.classify(window[-self.hook.window :])
            self._note_flags(found)
            blocking = [d for d in found if d.action == "block"]
            if blocking:
                return self._cut(state, choice, 0, blocking[0].category)
        elif self.hook.uses_classifier and not finished:
            release = 0  # wait for the next classifier pass
        return self._release(state, choice, release, choice.finish_reason)

    def _releasable(self, state: _ChoiceState, window: str, base: int, offset: int) -> int:
        """How many pending characters may go out while the choice goes on (``window[0]`` is
        character ``base`` of the output)."""
        hold = self.hook.policy.hold_from(window, state.cursor.block_from - base)
        state.cursor.block_from = base + hold  # nothing before it can start a match, now or later
        release = min(hold - offset, len(state.pending) - self.hook.holdback)
        return max(release, len(state.pending) - self.hook.window, 0)  # hold back at most the window

    def _drain(self, index: int, state: _ChoiceState) -> ChoiceDelta:
        """The held text of a choice whose stream ended without a finish reason, judged as final."""
        choice = ChoiceDelta(index, "", 0)
        window = state.tail + state.pending
        offset = len(state.tail)
        hits = self._blocking(self.hook.policy.match_rules(window), offset)
        if hits:
            return self._cut_before(state, choice, window, offset, hits)
        return self._release(state, choice, len(state.pending), None)

    def _blocking(self, detections: list[Detection], offset: int, *, note: bool = True) -> list[Detection]:
        """The blocking matches that reach into unreleased text (flags noted on the way)."""
        if note:
            self._note_flags(detections)
        return [d for d in detections if d.action == "block" and d.end > offset]

    def _cut_before(
        self, state: _ChoiceState, choice: ChoiceDelta, window: str, offset: int, hits: list[Detection]
    ) -> ChoiceDelta:
        """End the choice before its earliest blocking match."""
        first = min(hits, key=lambda d: d.start)
        end = first.start
        # The text that goes out is final: if it holds a match of its own (a lookahead that saw
        # the cut-off text, a match that ended at the end), cut before that one too.
        while end > offset:
            again = self._blocking(self.hook.policy.match_rules(window[:end]), offset, note=False)
            if not again:
                break
            end = min(d.start for d in again)
        return self._cut(state, choice, max(end - offset, 0), first.category)

    def _note_flags(self, detections: list[Detection]) -> None:
        for d in detections:
            if d.action == "flag" and d.category not in self.flagged:
                self.flagged.append(d.category)

    def _release(
        self, state: _ChoiceState, choice: ChoiceDelta, count: int, finish: str | None, *, cut: bool = False
    ) -> ChoiceDelta:
        text, state.pending = state.pending[:count], state.pending[count:]
        state.tail = (state.tail + text)[-self.hook.window :]
        state.released += len(text)
        if finish is not None:
            state.done = True
        return ChoiceDelta(
            index=choice.index,
            text=text,
            num_tokens=choice.num_tokens,
            finish_reason=finish,  # type: ignore[arg-type]
            logprobs=state.take_logprobs(everything=not state.pending and not cut),
        )

    def _cut(self, state: _ChoiceState, choice: ChoiceDelta, safe_chars: int, category: str) -> ChoiceDelta:
        if category not in self.blocked:
            self.blocked.append(category)
        delta = self._release(state, choice, safe_chars, CONTENT_FILTER, cut=True)
        state.pending = ""
        state.logprobs.clear()  # the cut text's logprobs never go out
        return delta

    def _account(self) -> None:
        outcome = "output_blocked" if self.blocked else ("output_flagged" if self.flagged else None)
        if outcome is not None:
            self.ctx.annotations["moderation"] = outcome
        self.hook.policy.metrics.verdict(OUTPUT, blocked=tuple(self.blocked), flagged=tuple(self.flagged))
