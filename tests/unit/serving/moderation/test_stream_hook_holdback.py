"""The stream hook holds back only text that could still become a blocking match.

Ordinary text goes out in the engine step it arrives (the time-to-first-token regression
guard); a blocked phrase, however the engine splits it, never reaches the client, neither
its text nor its logprobs; a match that more text could undo ("kill" -> "killer") waits
instead of being cut; the held text is bounded by ``window_chars``.
"""

from __future__ import annotations

import re
from typing import AsyncIterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from serving.config.moderation import DEFAULT_RULES, ModerationSettings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import ChoiceDelta, GenerateOutput, GenerateRequest, SamplingOptions, TokenLogprob
from serving.moderation.metrics import ModerationMetrics
from serving.moderation.policy import ModerationPolicy
from serving.moderation.stream_hook import OutputModerationHook
from tests.unit.serving.moderation.test_stream_hook import (
    Counting,
    finishes,
    make_ctx,
    released_logprobs,
    run,
    texts,
    with_logprobs,
)

# The shipped defaults (weapons rule, card and secret detectors blocking) plus two term rules.
CUSTOM_RULES = (
    {"category": "test/unsafe", "terms": ["forbidden phrase"]},
    {"category": "test/kill", "terms": ["kill"]},
)


def make_hook(**values) -> OutputModerationHook:
    """The hook over the default settings, with the custom rules added."""
    rules = [r.model_dump() for r in DEFAULT_RULES] + list(CUSTOM_RULES)
    settings = ModerationSettings(**{"rules": rules, **values})
    return OutputModerationHook(ModerationPolicy(settings, metrics=ModerationMetrics("m")))


def tokens(text: str) -> list[str]:
    """Word-like chunks as a tokenizer makes them: "Hello", "!", " How", " can", ..."""
    return re.findall(r"\s*(?:\w+|[^\w\s])", text)


async def chunks(parts: list[str], finish: str | None = "stop") -> AsyncIterator[GenerateOutput]:
    """One engine output per part (one token each); the last one carries ``finish``."""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        yield GenerateOutput(
            prompt_tokens=3,
            choices=[ChoiceDelta(0, part, 1, finish if last else None, logprobs=[TokenLogprob(part, -0.5)])],
        )


def released_as_it_went(outputs: list[GenerateOutput]) -> list[str]:
    """The text the client had after each output."""
    seen, so_far = [], ""
    for chunk in texts(outputs):
        so_far += chunk
        seen.append(so_far)
    return seen


# -- 1. ordinary text: no hold-back ---------------------------------------------------

ORDINARY = [
    "Hello! How can I help you today?",
    "Sure, here is a short summary of the article you sent me.",
    "The capital of France is Paris, and it is known for the Eiffel Tower.",
    "Yes. Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Paris is lovely in spring; bring an umbrella, though.",
]


@pytest.mark.parametrize("sentence", ORDINARY)
async def test_ordinary_text_is_released_in_the_step_it_arrives(sentence: str) -> None:
    parts = tokens(sentence)
    upstream = Counting(chunks(parts))
    stream = make_hook().wrap(make_ctx(), upstream)
    first = await stream.__anext__()
    assert upstream.pulled == 1  # the first content chunk left after exactly one engine output
    assert first.choices[0].text == parts[0]
    rest = [out async for out in stream]
    assert "".join(texts([first, *rest])) == sentence and finishes(rest) == ["stop"]


async def test_first_token_of_the_fake_engine_is_not_held_back() -> None:
    reply = tuple(tokens("Hello! How can I help you today?"))
    engine = FakeEngine(FakeEngineConfig(reply=reply, max_model_len=512))
    messages = ({"role": "user", "content": "hi"},)
    request = GenerateRequest(request_id="r1", sampling=SamplingOptions(), messages=messages)
    upstream = Counting(engine.generate(request))
    first = await make_hook().wrap(make_ctx(), upstream).__anext__()
    assert upstream.pulled == 1 and first.choices[0].text == "Hello"


async def test_a_word_that_could_begin_a_match_waits_until_ruled_out() -> None:
    # " How" could begin the weapons rule ("how to build ..."): held until " can" rules it out.
    outputs = await run(make_hook(), chunks(["Hello", "!", " How", " can", " I", " help", "?"]))
    # " I" could begin "instructions for ...": held until " help".
    assert texts(outputs) == ["Hello", "!", " ", "How can", " ", "I help", "?"]


# -- 2. a blocked phrase, split anywhere, never leaks -------------------------------------

BLOCKED = [
    ("Sure. Here is how to build a pipe bomb, step one.", "how to build a pipe bomb", "illicit/weapons"),
    ("Your card 4111 1111 1111 1111 is on file.", "4111 1111 1111 1111", "pii/card"),
    ("Use sk-abcdefghijklmnopqrstuvwx to call it.", "sk-abcdefghijklmnopqrstuvwx", "pii/secret"),
    ("The answer is forbidden phrase indeed.", "forbidden phrase", "test/unsafe"),
]


def assert_cut_before(outputs: list[GenerateOutput], text: str, phrase: str) -> None:
    safe = text[: text.index(phrase)]
    for so_far in released_as_it_went(outputs):
        assert safe.startswith(so_far), (so_far, safe)  # never a character of the phrase
    assert "".join(texts(outputs)) == safe
    assert finishes(outputs) == ["content_filter"]
    assert safe.startswith("".join(released_logprobs(outputs)))  # no logprob of the phrase either


@pytest.mark.parametrize(("text", "phrase", "category"), BLOCKED, ids=[b[2] for b in BLOCKED])
async def test_a_blocked_phrase_split_at_every_point_never_leaks(text: str, phrase: str, category: str) -> None:
    for split in range(1, len(text)):
        hook = make_hook()
        outputs = await run(hook, chunks([text[:split], text[split:]]))
        assert_cut_before(outputs, text, phrase)
        assert hook.policy.metrics.count("block", "output", category) == 1


@pytest.mark.parametrize(("text", "phrase", "category"), BLOCKED, ids=[b[2] for b in BLOCKED])
async def test_a_blocked_phrase_sent_character_by_character_never_leaks(text: str, phrase: str, category: str) -> None:
    outputs = await run(make_hook(), chunks(list(text)))
    assert_cut_before(outputs, text, phrase)
    start = text.index(phrase)
    assert "".join(texts(outputs)) == text[:start]


@pytest.mark.parametrize(("text", "phrase", "category"), BLOCKED, ids=[b[2] for b in BLOCKED])
async def test_a_blocked_phrase_at_the_very_end_is_cut_at_the_finish(text: str, phrase: str, category: str) -> None:
    text = text[: text.index(phrase) + len(phrase)]
    outputs = await run(make_hook(), chunks(tokens(text)))
    assert_cut_before(outputs, text, phrase)


# -- 3. a complete match that more text could undo waits --------------------------------


async def test_kill_then_er_is_not_cut() -> None:
    outputs = await run(make_hook(), chunks(["The", " kill", "er", " whale", "."]))
    assert texts(outputs) == ["The", " ", "killer", " whale", "."]
    assert finishes(outputs) == ["stop"]


@pytest.mark.parametrize("after", [" now", " ", ".", "\n"])
async def test_kill_followed_by_more_text_is_cut(after: str) -> None:
    outputs = await run(make_hook(), chunks(["The", " kill", after, " more"]))
    assert "".join(texts(outputs)) == "The " and finishes(outputs) == ["content_filter"]


async def test_kill_at_the_finish_is_cut() -> None:
    outputs = await run(make_hook(), chunks(["The", " kill"]))
    assert "".join(texts(outputs)) == "The " and finishes(outputs) == ["content_filter"]


async def test_kill_held_when_the_engine_stops_without_a_finish_reason_is_cut() -> None:
    outputs = await run(make_hook(), chunks(["The", " kill"], finish=None))
    assert "".join(texts(outputs)) == "The " and finishes(outputs) == ["content_filter"]


# -- 4. logprobs go with the text ---------------------------------------------------------


async def test_logprobs_of_held_and_cut_text_never_go_out() -> None:
    steps = [
        [(0, "The", None, ("The",))],
        [(0, " answer", None, (" answer",))],
        [(0, " is forbid", None, (" is", " forbid"))],
        [(0, "den", None, ("den",))],
        [(0, " phrase", None, (" phrase",))],
        [(0, " indeed", "stop", (" indeed",))],
    ]
    outputs = await run(make_hook(), with_logprobs(steps))
    per_output = [[lp.token for c in o.choices for lp in c.logprobs or ()] for o in outputs]
    assert texts(outputs) == ["The", " answer", " is ", "", "", ""]
    assert per_output == [["The"], [" answer"], [" is"], [], [], []]
    assert finishes(outputs) == ["content_filter"]


async def test_logprobs_of_text_released_after_a_hold_go_out_with_it() -> None:
    steps = [
        [(0, "The", None, ("The",))],
        [(0, " kill", None, (" kill",))],
        [(0, "er", None, ("er",))],
        [(0, " whale", "stop", (" whale",))],
    ]
    outputs = await run(make_hook(), with_logprobs(steps))
    per_output = [[lp.token for c in o.choices for lp in c.logprobs or ()] for o in outputs]
    assert per_output == [["The"], [], [" kill", "er"], [" whale"]]


# -- 5. the hold-back is bounded by window_chars ------------------------------------------


async def test_a_possible_match_longer_than_the_window_releases_its_oldest_text() -> None:
    # Matches are looked for in the last window_chars released characters plus the held ones:
    # a 100-character match is still seen (and cut) when it completes, its start already sent.
    hook = make_hook(window_chars=64, rules=[{"category": "test/tag", "patterns": [r"<<[^>]*>>"]}])
    parts = ["Hi ", "<<"] + ["abcdefgh"] * 12 + [">>", " bye"]
    outputs = await run(hook, chunks(parts))
    arrived = ""
    for part, so_far in zip(parts, released_as_it_went(outputs)):
        arrived += part
        if part != ">>":  # the step that completes the match cuts (drops) what was held
            assert len(arrived) - len(so_far) <= 64  # never more than the window held back
    assert released_as_it_went(outputs)[1] == "Hi "  # "<<" could begin a match: held
    assert len(released_as_it_went(outputs)[-2]) == len("Hi <<") + 8 * 12 - 64  # the oldest went out
    assert finishes(outputs) == ["content_filter"]  # and the completed match is still cut


async def test_a_complete_match_that_keeps_growing_is_cut_at_the_window_bound() -> None:
    # A PEM private key matches from its first line on (to the end of the text) and grows with
    # every chunk: at the bound it is cut, never released.
    parts = tokens("Here: -----BEGIN PRIVATE KEY-----") + ["MIIEvQIB", "ADANBgkq", "hkiG9w0B", "AQEFAASC"] * 8
    outputs = await run(make_hook(window_chars=64), chunks(parts))
    assert "".join(texts(outputs)) == "Here: " and finishes(outputs) == ["content_filter"]
    assert len(outputs) < len(parts)  # cut before the stream ended


async def test_flag_only_detectors_hold_nothing_back() -> None:
    # E-mail and phone numbers are flagged by default: reported when complete, never held.
    outputs = await run(make_hook(), chunks(["Mail", " bob", "@", "example", ".", "com", " today"]))
    assert texts(outputs) == ["Mail", " bob", "@", "example", ".", "com", " today"]
    outputs = await run(make_hook(pii={"email": "block"}), chunks(["Mail", " bob", "@", "example", ".", "com", " x"]))
    assert "".join(texts(outputs)) == "Mail " and finishes(outputs) == ["content_filter"]


# -- 6. properties: random text, random chunking --------------------------------------------

# Words that begin (or nearly make) blocked phrases and secrets, so that chunks often end
# inside a possible match. No digits: "4111 1111 1111 1111" followed by " 1" is a card in
# the stream's view (the match is complete before the " 1" arrives) but not in the whole
# text's (the 4-4-4-4-1 shape fails the Luhn check), so "== input" would not hold.
VOCABULARY = (
    "how", "to", "do", "i", "build", "make", "a", "pipe", "bom", "bomb", "steps", "instructions",
    "kil", "kill", "killer", "forbid", "forbidden", "phrase", "the", "is", "and", "sk", "s", "-",
    "Bearer", "secret", "api", "key", "passw", "ghp", "_", "eyJ", "AKIA", "xox", "BEGIN", "=", ":",
    ".", ",", "!", "?", "@", "bob", "example",
)
SEPARATORS = (" ", " ", " ", "\n", "")


@st.composite
def ordinary_texts(draw) -> str:
    words = draw(st.lists(st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(SEPARATORS)), max_size=40))
    return "".join(w + sep for w, sep in words)


@st.composite
def chunkings(draw, text: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(text) - 1, 1)), max_size=len(text)))))
    bounds = [0, *(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a] or [""]


# Fixed examples (derandomize): the same cases on every run, no example database written.
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(data=st.data())
async def test_property_text_without_a_blocked_phrase_goes_out_whole(data) -> None:
    hook = make_hook()
    text = data.draw(ordinary_texts())
    assume(not any(d.action == "block" for d in hook.policy.match_rules(text)))
    outputs = await run(hook, chunks(data.draw(chunkings(text))))
    assert "".join(texts(outputs)) == text
    assert finishes(outputs) == ["stop"]


@PROPERTY
@given(data=st.data())
async def test_property_text_with_a_blocked_phrase_never_shows_any_of_it(data) -> None:
    phrase = data.draw(st.sampled_from([b[1] for b in BLOCKED] + ["kill"]))
    before = data.draw(ordinary_texts()) + " "
    text = before + phrase + " " + data.draw(ordinary_texts())
    outputs = await run(make_hook(), chunks(data.draw(chunkings(text))))
    for so_far in released_as_it_went(outputs):
        assert before.startswith(so_far), (so_far, before)
    assert finishes(outputs) == ["content_filter"]
