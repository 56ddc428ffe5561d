"""PII and secret detectors: what they find, what they leave alone, and redaction."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.privacy import pii
from serving.privacy.pii import find_pii, redact, unfinished_from, unfinished_pii, unfinished_pii_bound


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+news@example.co.uk today", "email"),
        ("call +1 (415) 555-0100 now", "phone"),
        ("call 415-555-0100 now", "phone"),
        ("ring +44 20 7946 0958", "phone"),
        ("pay with 4111 1111 1111 1111", "card"),
        ("pay with 5500-0000-0000-0004", "card"),
        ("key sk-proj-AbCdEfGhIjKlMnOpQrStUv123456", "secret"),
        ("Authorization: Bearer abcdefghijklmnop.qrstuvwx-yz", "secret"),
        ("aws AKIAIOSFODNN7EXAMPLE", "secret"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "secret"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "secret"),
        ("password=hunter2hunter2", "secret"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "secret"),
    ],
)
def test_detects(text: str, kind: str) -> None:
    found = find_pii(text)
    assert [m.kind for m in found] == [kind]
    assert f"[REDACTED:{kind.upper()}]" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-01-15 at 10:30",
        "version 1.2.3.4 of the library",
        "order 12345 shipped",
        "4111 1111 1111 1112",  # fails the Luhn check
        "0000 0000 0000 0000",  # one repeated digit
        "call 555-0100",  # too few digits for a phone number
        "the sk- prefix alone",
        "user@localhost has no domain suffix",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert find_pii(text) == []
    assert redact(text) == text


def test_redacts_every_span_and_keeps_the_rest() -> None:
    text = "me: a@b.io, card 4111111111111111, key sk-abcdefghijklmnopqrstu end"
    assert redact(text) == "me: [REDACTED:EMAIL], card [REDACTED:CARD], key [REDACTED:SECRET] end"


def test_kinds_can_be_selected() -> None:
    text = "a@b.io and 4111111111111111"
    assert [m.kind for m in find_pii(text, ["card"])] == ["card"]
    assert redact(text, ["email"]) == "[REDACTED:EMAIL] and 4111111111111111"


def test_find_pii_from_a_position_sees_the_text_before_it_as_context() -> None:
    text = "a@b.io and c@d.io, card 4111 1111 1111 1111, not 4111 1111 1111 1112"
    assert [(m.kind, m.start) for m in find_pii(text, pos=7)] == [("email", 11), ("card", 24)]
    assert find_pii(text, pos=45) == []  # the last card fails the Luhn check from any pos
    # A match starting before pos is not looked for, so it hides nothing: inside the card a
    # phone number's shape shows (the stream hook resumes where no match starts before).
    assert [(m.kind, m.start) for m in find_pii(text, pos=25)] == [("phone", 29)]
    assert find_pii("a@b.io", pos=1) == []  # the local part would start before pos
    assert find_pii("-4111111111111111", ["card"], 1) == []  # the "-" before pos still counts
    assert find_pii("ask-abcdefghijklmnopqrstuvwx", ["secret"], 1) == []  # no word boundary at pos
    assert find_pii("x sk-abcdefghijklmnopqrstuvwx", ["secret"], 99) == []


def test_a_case_insensitive_secret_with_a_long_s_is_found() -> None:
    # "ſ" (long s) matches "s" case-insensitively; the hint test must not skip the scan for it.
    prefix = "nothing that looks like a key in this first part, then "
    assert [m.kind for m in find_pii(prefix + "ſecret=abcdefjklmnopq12345 ok")] == ["secret"]
    held = prefix + "ſecret: abcdefjklmnopqrstuvw"  # complete, touching the end: longer values are one
    assert unfinished_pii(held, ["secret"]) == len(prefix)


def test_a_card_is_not_also_reported_as_a_phone() -> None:
    found = find_pii("card 4111-1111-1111-1111.")
    assert [m.kind for m in found] == ["card"]


def test_a_phone_number_followed_by_other_numbers_is_still_found() -> None:
    text = "call +1 415 555 0199 4242 4242 4242 4242 now"
    assert redact(text) == "call [REDACTED:PHONE] [REDACTED:CARD] now"


# -- cost: one pass per detector, whatever the number of matches -------------------------

DENSE_UNIT = "mail user{i}@example.org or call 415 555 {i:04d}. "
DENSE_REDACTED = "mail [REDACTED:EMAIL] or call [REDACTED:PHONE]. "


def dense_pii(units: int) -> str:
    """Text with two PII matches (an e-mail address and a phone number) every ~50 characters."""
    return "".join(DENSE_UNIT.format(i=i) for i in range(units))


def lines_run_in_pii_module(fn, *args) -> int:
    """How many Python lines of serving/privacy/pii.py run during ``fn(*args)`` (an operation count).

    Deterministic, unlike a timing: it counts work, not seconds, so it holds on a loaded machine.
    """
    target = pii.__file__
    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename == target else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        fn(*args)
    finally:
        sys.settrace(previous)
    return count


def test_redaction_work_grows_linearly_with_the_number_of_matches() -> None:
    small, large = dense_pii(150), dense_pii(600)
    assert redact(small) == DENSE_REDACTED * 150
    assert redact(large) == DENSE_REDACTED * 600
    ops_small = lines_run_in_pii_module(redact, small)
    ops_large = lines_run_in_pii_module(redact, large)
    # Linear: 4x the input costs ~4x. Comparing each match with every earlier one made it ~14x.
    assert ops_small > 0 and ops_large < 6 * ops_small, (ops_small, ops_large)


# -- unfinished_pii: where a detector could still match (the stream hold-back) ---------------


@pytest.mark.parametrize(
    ("text", "kind", "start"),
    [
        ("pay with 4111", "card", 9),
        ("pay with 4111 1111 1111 1111", "card", 9),  # complete, but " 1" could still follow
        ("pay with 4111 1111 1111 1111 now", "card", 32),  # decided
        ("1234 5678 9012 3456 ", "card", 0),  # a 4-4-4-4 shape that "7" would extend
        ("0199 4242 4242 4242 4242", "card", 5),  # behind a shape that cannot reach the end
        ("In 2024", "card", 3),
        ("Hello there", "card", 11),
        ("key sk-ab", "secret", 4),
        ("key sk-abcdefghijklmnopqrstuv", "secret", 4),  # longer keys are one key
        ("the s", "secret", 4),  # "sk-", "secret"
        ("Hello there", "secret", 11),
        ("-----BEGIN PRIVATE KEY-----abc", "secret", 0),
        ("mail bob@exa", "email", 5),
        ("call +1 415", "phone", 5),
    ],
)
def test_unfinished_pii(text: str, kind: str, start: int) -> None:
    assert unfinished_pii(text, [kind]) == start


def test_unfinished_pii_of_no_kind_and_past_pos() -> None:
    assert unfinished_pii("pay 4111", []) == len("pay 4111")
    assert unfinished_pii("4111 and 4111", ["card"], 5) == 9
    assert unfinished_pii("4111", ["card"], -3) == 0 and unfinished_pii("4111", ["card"], 99) == 4


SHAPES = {"card": pii._CARD_SHAPE, "phone": pii._PHONE_SHAPE, "email": pii._EMAIL_SHAPE, "secret": pii._SECRET_SHAPE}
# Characters of every shape, and the secrets' beginnings (for the hint bound).
PIECES = [*"0123456789 -+.()@aZ_=:", "sk-", "Bearer ", "access", "-token", "github_pat_", "-----BEGIN ", "passw"]


def over_searches(test):
    """Run ``test`` for 400 texts of PIECES, each with a kind and a start position."""
    return settings(max_examples=400, deadline=None, derandomize=True, database=None)(
        given(
            text=st.lists(st.sampled_from(PIECES), max_size=60).map("".join),
            kind=st.sampled_from(sorted(SHAPES)),
            pos=st.integers(0, 120),
        )(test)
    )


@over_searches
def test_bounded_searches_find_what_a_whole_search_finds(text: str, kind: str, pos: int) -> None:
    # Cards, phones, e-mails and secrets skip the part of the text too far from the end (or from
    # the first "@", or the first hint) to reach it: the answer must be that of a search from pos.
    assert unfinished_pii(text, [kind], pos) == unfinished_from(SHAPES[kind], text, pos)


@over_searches
def test_the_cheap_bound_is_at_most_the_answer_and_close_to_it(text: str, kind: str, pos: int) -> None:
    # Where a stream's flag-only detectors resume: never after a possible match, never far before.
    exact = unfinished_pii(text, [kind], pos)
    bound = unfinished_pii_bound(text, [kind], pos)
    assert min(pos, len(text)) <= bound <= exact <= bound + 64
