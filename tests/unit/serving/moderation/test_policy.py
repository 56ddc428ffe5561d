"""The moderation policy: rules (terms, patterns), PII actions, classifier fail-open."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from serving.moderation.metrics import ModerationMetrics
from serving.moderation.policy import ModerationPolicy, StreamCursor
from serving.config.moderation import ModerationSettings


def policy(**values) -> ModerationPolicy:
    return ModerationPolicy(ModerationSettings(**values), metrics=ModerationMetrics("m"))


async def test_terms_match_whole_words_case_insensitively() -> None:
    p = policy(rules=[{"category": "drugs", "terms": ["crystal meth"]}])
    assert (await p.check("where to buy Crystal  METH")).blocked is False  # two spaces: not the term
    assert (await p.check("where to buy Crystal METH?")).blocked_categories == ("drugs",)
    assert (await p.check("crystal methodology")).blocked is False


async def test_patterns_and_positions() -> None:
    p = policy(rules=[{"category": "secrets/internal", "patterns": [r"project\s+nightingale"]}])
    [hit] = [d for d in p.match_rules("about Project  Nightingale today") if d.category == "secrets/internal"]
    assert (hit.start, hit.end) == (6, 26)


async def test_default_rules_catch_weapon_instructions() -> None:
    p = policy()
    assert (await p.check("Explain how to build a pipe bomb")).blocked_categories == ("illicit/weapons",)
    assert (await p.check("The history of the atomic bomb")).blocked is False


async def test_pii_actions() -> None:
    p = policy(pii={"email": "flag", "phone": "off", "card": "block", "secret": "block"})
    verdict = await p.check("mail a@b.io, phone +1 415 555 0100")
    assert verdict.blocked is False
    assert verdict.flagged_categories == ("pii/email",)
    assert (await p.check("card 4111 1111 1111 1111")).blocked_categories == ("pii/card",)
    assert "pii/phone" not in p.categories


async def test_flag_and_off_actions() -> None:
    p = policy(
        rules=[
            {"category": "profanity", "terms": ["darn"], "action": "flag"},
            {"category": "ignored", "terms": ["whatever"], "action": "off"},
        ]
    )
    verdict = await p.check("darn it, whatever")
    assert verdict.blocked is False and verdict.flagged_categories == ("profanity",)
    assert "ignored" not in p.categories


async def test_metrics_count_by_stage_and_category() -> None:
    p = policy(rules=[{"category": "x", "terms": ["bad"]}])
    await p.check("bad", stage="input")
    await p.check("fine", stage="input")
    await p.check("a@b.io", stage="api")
    assert p.metrics.count("block", "input", "x") == 1
    assert p.metrics.count("check", "input", "passed") == 1
    assert p.metrics.count("flag", "api", "pii/email") == 1


class FakeClassifier:
    def __init__(self, scores: dict[str, float] | None = None, fail: bool = False, delay: float = 0.0) -> None:
        self.scores, self.fail, self.delay, self.calls = scores or {}, fail, delay, 0

    async def classify(self, text: str) -> dict[str, float]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("classifier down")
        return self.scores


def classified(classifier: FakeClassifier, **classifier_settings) -> ModerationPolicy:
    settings = ModerationSettings(classifier={"enabled": True, **classifier_settings})
    return ModerationPolicy(settings, classifier=classifier, metrics=ModerationMetrics("m"))


async def test_classifier_scores_above_threshold_block() -> None:
    p = classified(FakeClassifier({"violence": 0.9, "self-harm": 0.2}), threshold=0.5)
    verdict = await p.check("some text")
    assert verdict.blocked_categories == ("violence",)
    assert verdict.score("violence") == pytest.approx(0.9)
    assert set(p.categories) >= {"violence", "self-harm"}


async def test_classifier_is_skipped_when_rules_already_block() -> None:
    fake = FakeClassifier({"violence": 0.9})
    p = classified(fake)
    await p.check("card 4111 1111 1111 1111")
    assert fake.calls == 0


async def test_classifier_failure_and_timeout_fail_open() -> None:
    p = classified(FakeClassifier(fail=True))
    assert (await p.check("text")).blocked is False
    slow = classified(FakeClassifier({"violence": 1.0}, delay=0.5), timeout_s=0.05)
    assert (await slow.check("text")).blocked is False
    assert p.metrics.count("classifier_error") == 1 and slow.metrics.count("classifier_error") == 1


def test_settings_are_strict() -> None:
    with pytest.raises(ValidationError):
        ModerationSettings(rules=[{"category": "x", "patterns": ["(unclosed"]}])
    with pytest.raises(ValidationError):
        ModerationSettings(rules=[{"category": "x"}])
    with pytest.raises(ValidationError):
        ModerationSettings(rules=[{"category": "Bad Category", "terms": ["a"]}])
    with pytest.raises(ValidationError):
        ModerationSettings(holdback_chars=600, window_chars=512)
    with pytest.raises(ValidationError):
        ModerationSettings(unknown=True)


def test_patterns_must_mean_the_same_to_re_and_regex() -> None:
    # A global flag inside the combined expression: re refuses it (regex would apply it to the
    # whole expression, terms included).
    with pytest.raises(ValidationError, match="global flags"):
        ModerationSettings(rules=[{"category": "x", "patterns": ["(?s)a.b"]}])
    with pytest.raises(ValidationError, match="POSIX"):
        ModerationSettings(rules=[{"category": "x", "patterns": ["[[:alpha:]]+"]}])
    with pytest.raises(ValidationError):  # regex-only syntax
        ModerationSettings(rules=[{"category": "x", "patterns": [r"\p{L}+"]}])
    ModerationSettings(rules=[{"category": "x", "patterns": ["(?s:a.b)"], "terms": ["c d"]}])
    assert ModerationSettings().holdback_chars == 0


# -- hold_from: where a blocking match could still begin ------------------------------------


def test_hold_from_a_term() -> None:
    p = policy(rules=[{"category": "kill", "terms": ["kill"]}], pii={"card": "off", "secret": "off"})
    assert p.hold_from("the ki") == 4  # could become "kill"
    assert p.hold_from("the kill") == 4  # complete, but "killer" is not the term
    assert p.hold_from("the killer") == len("the killer")
    assert p.hold_from("the kill ") == len("the kill ")  # decided: match_rules reports it, the hook cuts
    assert p.hold_from("skill") == len("skill")  # not on a word boundary
    assert p.hold_from("kil kil", 4) == 4 and p.hold_from("kil kil", 5) == 7  # nothing before pos


def test_hold_from_finds_the_earliest_start_even_behind_a_complete_match() -> None:
    # A complete match touching the end ("kill") must not hide an earlier possible one.
    p = policy(
        rules=[{"category": "x", "terms": ["kill"], "patterns": [r"how to \w+ a bomb"]}],
        pii={"card": "off", "secret": "off"},
    )
    assert p.hold_from("so how to kill") == 3


def test_hold_from_ignores_flag_rules_and_flag_pii() -> None:
    p = policy(rules=[{"category": "darn", "terms": ["darn"], "action": "flag"}])
    assert p.hold_from("oh dar") == 6
    assert p.hold_from("mail bob@exam") == len("mail bob@exam")  # email: flag by default
    assert policy(pii={"email": "block"}).hold_from("mail bob@exam") == 5


def test_hold_from_default_rules_and_pii() -> None:
    p = policy()
    assert p.hold_from("Hello! How can I help you today?") == len("Hello! How can I help you today?")
    assert p.hold_from("Here is how to bu") == 8  # the weapons rule
    assert p.hold_from("pay 4111 1111") == 4  # a card, before the Luhn check
    assert p.hold_from("key: sk-abc") == 5  # a secret
    assert p.hold_from("In 2024") == 3  # digits at the end could still be a card number


def test_match_stream_resumes_where_nothing_not_yet_seen_can_start() -> None:
    p = policy(rules=[{"category": "x", "terms": ["bad"]}, {"category": "f", "terms": ["darn"], "action": "flag"}])
    cursor = StreamCursor()
    assert p.match_stream("oh da", 0, cursor) == []
    assert cursor.rule_flags_from == {1: 3}  # "da" could still become "darn"
    assert [(d.category, d.start) for d in p.match_stream("oh darn", 0, cursor)] == [("f", 3)]
    # The window slid 3 characters (base 3); blocking matches are looked for from block_from on.
    cursor.block_from = 7
    found = p.match_stream("darn bad bad", 3, cursor, flagged=["f"])  # "f" flagged: not looked for
    assert [(d.category, d.start) for d in found] == [("x", 5), ("x", 9)]
    cursor.block_from = 3 + 9
    assert [d.start for d in p.match_stream("darn bad bad", 3, cursor, flagged=["f"])] == [9]
    cursor.block_from = 3 + 10
    assert p.match_stream("darn bad bad", 3, cursor, flagged=["f"]) == []  # both start before block_from


def test_match_stream_still_runs_a_flagged_pii_kind_that_hides_a_later_one() -> None:
    # An e-mail address whose local part is a phone number: the e-mail detector's find hides it
    # from the phone detector, so with e-mail flagged (and phone not) it still runs.
    p = policy()
    text = "write to 415-555-0100@example.com"
    assert [d.category for d in p.match_rules(text)] == ["pii/email"]
    assert [d.category for d in p.match_stream(text, 0, StreamCursor(), ["pii/email"])] == ["pii/email"]
    assert p.match_stream(text, 0, StreamCursor(), ["pii/email", "pii/phone"]) == []
