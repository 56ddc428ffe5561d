"""A stream step costs about its new text, not the window, and judges as a whole-window check.

``ModerationPolicy.match_stream`` resumes where nothing not yet seen can start: blocking
matches from where ``hold_from`` said one could still start, flag-only ones from where one
could still end in the new text, none of a category the stream already flagged. Two things
are checked here: the work (characters offered to the regular expressions, counted by
wrapping every compiled pattern; not time, so it holds on a loaded machine) grows with the
output, whatever ``window_chars``; and the stream comes out exactly as it did when every
step matched the whole window (a reference policy doing that, on random text and chunking).
"""

from __future__ import annotations

import re
from typing import Any, AsyncIterator

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.config.moderation import DEFAULT_RULES, ModerationSettings
from serving.engine.protocol import ChoiceDelta, GenerateOutput, TokenLogprob
from serving.moderation.metrics import ModerationMetrics
from serving.moderation.policy import ModerationPolicy, StreamCursor
from serving.moderation.stream_hook import OutputModerationHook
from serving.privacy import pii
from tests.unit.serving.moderation.test_stream_hook import make_ctx, run

RULES = [r.model_dump() for r in DEFAULT_RULES] + [
    {"category": "test/unsafe", "terms": ["forbidden phrase"]},
    {"category": "test/kill", "terms": ["kill"]},
    {"category": "test/darn", "terms": ["darn"], "action": "flag"},
    {"category": "test/tag", "patterns": [r"<<[^>]*>>"], "action": "flag"},  # unbounded length
]

PROSE = (
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp, counting "
    "the steps as his father had taught him. Ships passed far out at sea, their lights small and "
    "steady, and he wrote each one into the logbook with the time, the weather and the direction "
    "of the wind. In winter 1907 the storms came from the north and the whole tower hummed like a bell."
)


def tokens(text: str) -> list[str]:
    """Word-like chunks as a tokenizer makes them."""
    return re.findall(r"\s*(?:\w+|[^\w\s])", text)


async def choices(parts: list[list[str]]) -> AsyncIterator[GenerateOutput]:
    """Choice i's parts, one per engine output; each choice finishes with its last part."""
    for step in range(max(len(p) for p in parts)):
        yield GenerateOutput(
            prompt_tokens=3,
            choices=[
                ChoiceDelta(i, p[step], 1, "stop" if step == len(p) - 1 else None, [TokenLogprob(p[step], -0.5)])
                for i, p in enumerate(parts)
                if step < len(p)
            ],
        )


async def chunks(parts: list[str]) -> AsyncIterator[GenerateOutput]:
    """One engine output per part; the last one finishes."""
    async for out in choices([parts]):
        yield out


class WholeWindowPolicy(ModerationPolicy):
    """The reference: every step matches the whole window (what the stream hook did before)."""

    def match_stream(self, text, base, cursor, flagged=()):  # type: ignore[override]
        return self.match_rules(text)


# -- the work: characters scanned per step ------------------------------------------------


class CountingPattern:
    """A compiled pattern that adds the characters each unanchored scan may look at to ``counter``."""

    def __init__(self, pattern: regex.Pattern, counter: list[int]) -> None:
        self.inner, self.counter = pattern, counter

    def _count(self, text: str, pos: int = 0, endpos: int | None = None) -> None:
        end = len(text) if endpos is None else min(endpos, len(text))
        self.counter[0] += max(end - max(pos, 0), 0)

    def search(self, text: str, pos: int = 0, endpos: int | None = None, **kwargs: Any):
        self._count(text, pos, endpos)
        return self.inner.search(text, pos, *(() if endpos is None else (endpos,)), **kwargs)

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None, **kwargs: Any):
        self._count(text, pos, endpos)
        return self.inner.finditer(text, pos, *(() if endpos is None else (endpos,)), **kwargs)

    def __getattr__(self, name: str) -> Any:  # match, fullmatch (anchored), pattern, ...
        return getattr(self.inner, name)


@pytest.fixture
def scanned(monkeypatch) -> list[int]:
    """A counter of the characters every rule and PII pattern is asked to scan (rules compiled
    after this fixture, and the PII module's patterns, are wrapped)."""
    counter = [0]
    compile_ = regex.compile
    monkeypatch.setattr(regex, "compile", lambda *a, **k: CountingPattern(compile_(*a, **k), counter))
    for name, value in vars(pii).items():
        if isinstance(value, regex.Pattern):
            monkeypatch.setattr(pii, name, CountingPattern(value, counter))
    return counter


async def scanned_per_output_char(
    counter: list[int], *, window: int, repeats: int, policy_class: type[ModerationPolicy] = ModerationPolicy
) -> float:
    settings = ModerationSettings(rules=RULES, window_chars=window)
    hook = OutputModerationHook(policy_class(settings, metrics=ModerationMetrics("m")))
    text = " ".join([PROSE] * repeats)
    before = counter[0]
    outputs = await run(hook, chunks(tokens(text)))
    assert "".join(c.text for o in outputs for c in o.choices) == text  # nothing held, nothing cut
    return (counter[0] - before) / len(text)


async def test_scanned_characters_grow_with_the_output_not_the_window(scanned: list[int]) -> None:
    short = await scanned_per_output_char(scanned, window=512, repeats=8)  # ~3,400 characters
    long = await scanned_per_output_char(scanned, window=512, repeats=32)  # ~13,600
    wide = await scanned_per_output_char(scanned, window=4096, repeats=32)
    whole = await scanned_per_output_char(scanned, window=512, repeats=8, policy_class=WholeWindowPolicy)
    # A few scans per step over its ~5 new characters (and the last word, for the e-mail
    # detector): a small constant per output character (~18), the same for a longer answer
    # and for a window 8x wider. Matching the whole window at every step: ~900 at 512.
    assert short < 40 and long < 40, (short, long)
    assert abs(long - short) < 0.1 * short and abs(wide - long) < 0.05 * long, (short, long, wide)
    assert whole > 20 * short, (whole, short)  # the counter sees the window scans it should


async def test_a_flagged_category_is_not_looked_for_again(scanned: list[int]) -> None:
    policy = ModerationPolicy(ModerationSettings(rules=RULES), metrics=ModerationMetrics("m"))
    text = "darn <<tag>> mail bob@example.com or call +1 415 555 0100 "
    before = scanned[0]
    unflagged = policy.match_stream(text, 0, StreamCursor(), [])
    looked = scanned[0] - before
    assert {d.category for d in unflagged} == {"test/darn", "test/tag", "pii/email", "pii/phone"}
    cursor, before = StreamCursor(), scanned[0]
    assert policy.match_stream(text, 0, cursor, ["test/darn", "test/tag", "pii/email", "pii/phone"]) == []
    flagged = scanned[0] - before
    assert cursor.rule_flags_from == {} and cursor.pii_flags_from == 0  # no flag-only detector moved on
    # It looked exactly as far as a policy without the flag-only detectors does.
    blocking_only = ModerationSettings(
        rules=[r for r in RULES if r.get("action") != "flag"], pii={"email": "off", "phone": "off"}
    )
    before = scanned[0]
    assert ModerationPolicy(blocking_only).match_stream(text, 0, StreamCursor(), []) == []
    assert 0 < flagged == scanned[0] - before < looked, (flagged, scanned[0] - before, looked)


# -- the verdicts: the same as matching the whole window at every step ------------------------


# Beginnings of blocked phrases and secrets, flagged words, tags, e-mails and phone numbers
# (one an e-mail's local part: the e-mail detector's find hides it from the phone detector)...
ORDINARY = (
    "the", "sea", "light", "how", "to", "a", "build", "pipe", "steps", "instructions", "kil", "forbid", "phrase",
    "darn", "<<", ">>", "tag", "sk", "sk-", "abcdefghij", "Bearer", "passw", "secret", "api", "key", "=", "ſecret",
    "bob", "@", "example", ".", "com", "%", "é", "bob@example.com", "415-555-0100@example.com", "+1 415 555 0100",
    "415", "555", "0100", "4111", "1111", "(415)", "2024-01-15", "-", "-----END PRIVATE KEY-----",
)
# ...and, rarer, what blocks (a stream ends at the first one).
BLOCKERS = (
    "kill", "sk-abcdefghijklmnopqrstuvwx", "4111 1111 1111 1111", "-----BEGIN PRIVATE KEY-----",
    "password=hunter2hunter2", "how to build a pipe bomb", "forbidden phrase",
)
PIECES = ORDINARY * 6 + BLOCKERS
SEPARATORS = (" ", " ", " ", "", "\n", ", ")
PII_ACTIONS = (
    {},  # the defaults: e-mail and phone flagged, card and secret blocked
    {"email": "block", "phone": "block", "card": "flag", "secret": "flag"},
    {"email": "flag", "phone": "block", "card": "off", "secret": "flag"},
)


@st.composite
def chunked_texts(draw) -> list[str]:
    words = draw(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), max_size=60))
    text = "".join(w + sep for w, sep in words)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(text) - 1, 1)), max_size=len(text)))))
    bounds = [0, *(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a] or [""]


def outcome(outputs: list[GenerateOutput], hook: OutputModerationHook, ctx) -> tuple:
    released = [
        (c.index, c.text, c.finish_reason, [lp.token for lp in c.logprobs or ()]) for o in outputs for c in o.choices
    ]
    return released, sorted(hook.policy.metrics.tally.items()), dict(ctx.annotations)


@settings(
    max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    parts=st.lists(chunked_texts(), min_size=1, max_size=2),  # one or two choices (flags are per stream)
    pii_actions=st.sampled_from(PII_ACTIONS),
    window=st.sampled_from([512, 48]),
    holdback=st.sampled_from([0, 0, 5]),
)
async def test_property_a_stream_comes_out_as_with_whole_window_matching(parts, pii_actions, window, holdback) -> None:
    settings = ModerationSettings(rules=RULES, pii=pii_actions, window_chars=window, holdback_chars=holdback)
    results = []
    for policy_class in (ModerationPolicy, WholeWindowPolicy):
        hook = OutputModerationHook(policy_class(settings, metrics=ModerationMetrics("m")))
        ctx = make_ctx(n=len(parts))
        results.append(outcome(await run(hook, choices(parts), ctx), hook, ctx))
    assert results[0] == results[1]
