"""Output moderation on streams: sliding-window checks, hold-back, clean cut, upstream closed.

The hold-back of text that could still become a blocking match: test_stream_hook_holdback.py.
"""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import ChoiceDelta, GenerateOutput, GenerateRequest, SamplingOptions, TokenLogprob
from serving.core.context import RequestContext
from serving.moderation.metrics import ModerationMetrics
from serving.moderation.policy import ModerationPolicy
from serving.config.moderation import ModerationSettings
from serving.moderation.stream_hook import OutputModerationHook

REPLY = ("The", " answer", " is", " forbidden", " phrase", " and", " then", " more", " words", ".")
RULES = [{"category": "test/unsafe", "terms": ["forbidden phrase"]}]


def make_ctx(n: int = 1) -> RequestContext:
    request = GenerateRequest(request_id="r1", sampling=SamplingOptions(n=n), messages=({"role": "user", "content": "hi"},))
    return RequestContext(
        request_id="r1", response_id="chatcmpl-1", route="/v1/chat/completions", model="m", headers={}, body=None,
        generate=request,
    )


def make_hook(scorer=None, **values) -> OutputModerationHook:
    settings = ModerationSettings(**{"rules": RULES, **values})
    return OutputModerationHook(ModerationPolicy(settings, classifier=scorer, metrics=ModerationMetrics("m")))


class Counting:
    """Wraps a stream, counting what was pulled and whether it was closed."""

    def __init__(self, stream: AsyncIterator[GenerateOutput]) -> None:
        self.stream, self.pulled, self.closed = stream, 0, False

    def __aiter__(self):
        return self

    async def __anext__(self) -> GenerateOutput:
        out = await self.stream.__anext__()
        self.pulled += 1
        return out

    async def aclose(self) -> None:
        self.closed = True
        await self.stream.aclose()


async def run(hook: OutputModerationHook, upstream, ctx: RequestContext | None = None) -> list[GenerateOutput]:
    ctx = ctx or make_ctx()
    return [out async for out in hook.wrap(ctx, upstream)]


def texts(outputs: list[GenerateOutput], index: int = 0) -> list[str]:
    return [c.text for o in outputs for c in o.choices if c.index == index]


def finishes(outputs: list[GenerateOutput], index: int = 0) -> list[str | None]:
    return [c.finish_reason for o in outputs for c in o.choices if c.index == index and c.finish_reason]


def engine_stream(reply=REPLY) -> tuple[FakeEngine, Counting]:
    engine = FakeEngine(FakeEngineConfig(reply=reply, max_model_len=512))
    request = GenerateRequest(request_id="r1", sampling=SamplingOptions(), messages=({"role": "user", "content": "hi"},))
    return engine, Counting(engine.generate(request))


async def test_violating_stream_is_cut_before_the_match_and_upstream_closed() -> None:
    engine, upstream = engine_stream()
    ctx = make_ctx()
    hook = make_hook()
    outputs = await run(hook, upstream, ctx)
    assert "".join(texts(outputs)) == "The answer is "
    assert finishes(outputs) == ["content_filter"]
    assert upstream.closed and upstream.pulled < len(REPLY)
    assert not engine.running  # the engine request ended
    assert ctx.annotations["moderation"] == "output_blocked"
    assert hook.policy.metrics.count("block", "output", "test/unsafe") == 1


@pytest.mark.parametrize("holdback", [0, 32])
async def test_no_part_of_the_match_is_ever_released(holdback: int) -> None:
    _, upstream = engine_stream()
    outputs = await run(make_hook(holdback_chars=holdback), upstream)
    released = ""
    for chunk in texts(outputs):
        released += chunk
        assert "forbid" not in released
    assert released == "The answer is " and finishes(outputs) == ["content_filter"]


async def test_holdback_chars_holds_back_that_many_more_characters() -> None:
    steps = [[(0, "All good", None)], [(0, " here", None)], [(0, " now.", "stop")]]
    assert texts(await run(make_hook(holdback_chars=8), scripted(steps))) == ["", "All g", "ood here now."]
    assert texts(await run(make_hook(), scripted(steps))) == ["All good", " here", " now."]


async def test_safe_stream_passes_through_whole_with_token_counts() -> None:
    reply = ("All", " good", " here", ".")
    _, upstream = engine_stream(reply)
    outputs = await run(make_hook(holdback_chars=8), upstream)
    assert "".join(texts(outputs)) == "".join(reply)
    assert finishes(outputs) == ["stop"]
    assert sum(c.num_tokens for o in outputs for c in o.choices) == len(reply)


async def test_secret_in_output_is_cut_as_pii() -> None:
    reply = ("Your", " key", " is", " sk-abcdefghijklmnopqrstuvwx", " ok")
    _, upstream = engine_stream(reply)
    ctx = make_ctx()
    outputs = await run(make_hook(), upstream, ctx)
    assert "".join(texts(outputs)) == "Your key is "
    assert finishes(outputs) == ["content_filter"]


async def scripted(steps: list[list[tuple[int, str, str | None]]]) -> AsyncIterator[GenerateOutput]:
    for step in steps:
        yield GenerateOutput(prompt_tokens=3, choices=[ChoiceDelta(i, t, 1, f) for i, t, f in step])


async def test_only_the_violating_choice_is_cut() -> None:
    steps = [
        [(0, "safe ", None), (1, "the forbidden ", None)],
        [(0, "words ", None), (1, "phrase here", None)],
        [(0, "end", "stop"), (1, " more", "stop")],
    ]
    outputs = await run(make_hook(holdback_chars=20), scripted(steps), make_ctx(n=2))
    assert "".join(texts(outputs, 0)) == "safe words end" and finishes(outputs, 0) == ["stop"]
    assert "".join(texts(outputs, 1)) == "the " and finishes(outputs, 1) == ["content_filter"]


async def test_match_across_chunk_boundaries_is_found() -> None:
    steps = [[(0, "x forbi", None)], [(0, "dden phr", None)], [(0, "ase y", "stop")]]
    outputs = await run(make_hook(holdback_chars=20), scripted(steps))
    assert "".join(texts(outputs)) == "x "
    assert finishes(outputs) == ["content_filter"]


class WordClassifier:
    """Scores 'violence' 1.0 when the text contains 'angry'; records the windows it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def classify(self, text: str) -> dict[str, float]:
        self.seen.append(text)
        return {"violence": 1.0 if "angry" in text else 0.0}


async def test_classifier_checks_the_window_before_text_is_released() -> None:
    classifier = WordClassifier()
    hook = make_hook(classifier, holdback_chars=0, classifier={"enabled": True, "stream_stride_chars": 10})
    steps = [[(0, "calm calm ", None)], [(0, "calm ", None)], [(0, "so angry!", None)], [(0, " rest", "stop")]]
    outputs = await run(hook, scripted(steps))
    released = "".join(texts(outputs))
    assert released == "calm calm "  # the second chunk waited for the next pass, which saw 'angry'
    assert finishes(outputs) == ["content_filter"]
    assert len(classifier.seen) == 2


async def test_classifier_runs_at_the_end_of_a_short_stream() -> None:
    classifier = WordClassifier()
    hook = make_hook(classifier, classifier={"enabled": True, "stream_stride_chars": 500})
    outputs = await run(hook, scripted([[(0, "I am fine", None)], [(0, ".", "stop")]]))
    assert "".join(texts(outputs)) == "I am fine." and finishes(outputs) == ["stop"]
    assert classifier.seen == ["I am fine."]


async def test_engine_error_propagates_and_the_verdict_is_still_counted() -> None:
    engine = FakeEngine(FakeEngineConfig(reply=REPLY, fail_after_tokens=2))
    request = GenerateRequest(request_id="r", sampling=SamplingOptions(), messages=({"role": "user", "content": "x"},))
    hook = make_hook()
    with pytest.raises(Exception, match="fake engine failure"):
        await run(hook, engine.generate(request))
    assert hook.policy.metrics.count("check", "output", "passed") == 1


# -- logprobs travel with their text -----------------------------------------------


async def with_logprobs(steps: list[list[tuple[int, str, str | None, tuple[str, ...]]]]) -> AsyncIterator[GenerateOutput]:
    """A scripted stream whose deltas carry one logprob per token string given."""
    for step in steps:
        yield GenerateOutput(
            prompt_tokens=3,
            choices=[
                ChoiceDelta(i, t, len(toks), f, logprobs=[TokenLogprob(tok, -0.5) for tok in toks])
                for i, t, f, toks in step
            ],
        )


def released_logprobs(outputs: list[GenerateOutput], index: int = 0) -> list[str]:
    return [lp.token for o in outputs for c in o.choices if c.index == index for lp in c.logprobs or ()]


async def test_logprobs_of_held_back_text_are_held_back_with_it() -> None:
    steps = [
        [(0, "All good", None, ("All", " good"))],
        [(0, " here", None, (" here",))],
        [(0, " now.", "stop", (" now", "."))],
    ]
    outputs = await run(make_hook(holdback_chars=8), with_logprobs(steps))
    text, tokens = "", ""
    for out in outputs:
        for choice in out.choices:
            text += choice.text
            tokens += "".join(lp.token for lp in choice.logprobs or ())
            assert text.startswith(tokens), (text, tokens)  # never a logprob ahead of its text
    assert released_logprobs(outputs) == ["All", " good", " here", " now", "."]
    assert texts(outputs)[0] == ""  # the first chunk was held back, and its logprobs with it


async def test_logprobs_of_blocked_text_are_dropped_with_it() -> None:
    steps = [
        [(0, "x forbi", None, ("x", " forbi"))],
        [(0, "dden phr", None, ("dden", " phr"))],
        [(0, "ase y", "stop", ("ase", " y"))],
    ]
    outputs = await run(make_hook(holdback_chars=20), with_logprobs(steps))
    assert "".join(texts(outputs)) == "x " and finishes(outputs) == ["content_filter"]
    assert released_logprobs(outputs) == ["x"]  # " forbi" (and later tokens) hold blocked text: dropped


async def test_logprobs_of_text_released_before_the_cut_still_reach_the_client() -> None:
    steps = [
        [(0, "The answer", None, ("The", " answer"))],
        [(0, " is forbidden", None, (" is", " forbidden"))],
        [(0, " phrase", None, (" phrase",))],
    ]
    outputs = await run(make_hook(), with_logprobs(steps))
    # " forbidden" could begin the phrase: held back with its logprob, then cut with it.
    assert "".join(texts(outputs)) == "The answer is " and released_logprobs(outputs) == ["The", " answer", " is"]
    steps = [[(0, "Theanswer", None, ("The", "answer"))], [(0, " forbidden phrase", None, (" forbidden", " phrase"))]]
    outputs = await run(make_hook(holdback_chars=20), with_logprobs(steps))
    assert "".join(texts(outputs)) == "Theanswer " and released_logprobs(outputs) == ["The", "answer"]


async def test_logprobs_whose_tokens_do_not_spell_the_text_go_with_the_whole_delta() -> None:
    steps = [[(0, "ok fine", None, ("<0xE2>", "ok fine!"))], [(0, " forbidden phrase", "stop", (" forbidden phrase",))]]
    outputs = await run(make_hook(holdback_chars=4), with_logprobs(steps))
    assert "".join(texts(outputs)) == "ok fine " and released_logprobs(outputs) == ["<0xE2>", "ok fine!"]
