"""PII and secret detectors: emails, phone numbers, payment card numbers, keys/tokens.

One set of detectors serves two jobs: redaction (audit logs, log records) and the
moderation policy's PII categories. Detectors are regular expressions with a
validation step where a regex alone over-matches (Luhn for cards, digit counts for
phone numbers), so ordinary numbers and dates are not reported.

The expressions are compiled with the ``regex`` module (not ``re``): its partial matching
tells the moderation stream hook where a detector could still match once more text
arrives (``unfinished_pii``), and detection and that foresight must read ``\\w``, ``\\d``,
``\\s`` the same way (the two modules' Unicode tables differ on rare characters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import regex

PIIKind = Literal["email", "phone", "card", "secret"]
PII_KINDS: tuple[PIIKind, ...] = ("email", "phone", "card", "secret")


@dataclass(frozen=True)
class PIIMatch:
    """One detected span of ``text[start:end]``."""

    kind: PIIKind
    start: int
    end: int


_EMAIL = regex.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"
)
# A separator-tolerant phone shape; the digit count is checked afterwards.
_PHONE = regex.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w])"
    r"|(?<![\w+])\+\d{8,15}(?!\w)"
)
_CARD = regex.compile(
    r"(?<![\d-])(?:\d{13,19}"  # contiguous
    r"|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"  # 4-4-4-4(-3)
    r"|\d{4}([ -])\d{6}\2\d{5})"  # 4-6-5 (American Express)
    r"(?![\d-])"
)
_NUMBER_START = regex.compile(r"(?<![\d-])\d")
_DIGIT = regex.compile(r"\d")
_SECRETS = (
    regex.compile(r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{16,}"),  # OpenAI-style keys (sk-..., sk-proj-...)
    regex.compile(r"\b(?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+[A-Za-z0-9._~+/-]{16,}=*"),
    regex.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    regex.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    regex.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}\b"),
    regex.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    regex.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API keys
    regex.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWTs
    regex.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    regex.compile(
        r"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd)"
        r"[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{8,}"
    ),
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _cards(text: str, pos: int) -> Iterable[PIIMatch]:
    # Try every start (not just after the previous candidate): in "0199 4242 4242 4242 4242"
    # the first 4-4-4-4 shape fails the Luhn check and the card starts one group later.
    end = -1
    for candidate in _NUMBER_START.finditer(text, pos):
        start = candidate.start()
        if start < end:
            continue
        m = _CARD.match(text, start)
        if m is None:
            continue
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1:
            end = m.end()
            yield PIIMatch("card", m.start(), m.end())


_DATE = regex.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")
_VERSION = regex.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _phones(text: str, pos: int) -> Iterable[PIIMatch]:
    for m in _PHONE.finditer(text, pos):
        value = m.group()
        if not 9 <= len(_digits(value)) <= 15:
            continue
        # Dates and versions (2024-01-15, 1.2.3.4) are not phone numbers.
        if _DATE.fullmatch(value) or _VERSION.fullmatch(value):
            continue
        yield PIIMatch("phone", m.start(), m.end())


def _emails(text: str, pos: int) -> Iterable[PIIMatch]:
    for m in _EMAIL.finditer(text, pos):
        yield PIIMatch("email", m.start(), m.end())


# One alternation: a single scan of the text instead of one per pattern.
_SECRET = regex.compile("|".join(f"(?:{p.pattern})" for p in _SECRETS[:-1]) + f"|(?i:{_SECRETS[-1].pattern[4:]})")


# Every secret pattern contains one of these (the last ones case-folded): a cheap
# substring test skips the regex scan for ordinary text. Case-folded, not lower-cased: the
# case-insensitive patterns also match "ſ" (long s) for "s", and "ſecret".lower() keeps the "ſ".
_SECRET_HINTS = (
    "sk-", "earer", "EARER", "asic", "ASIC", "AKIA", "ASIA", "gh", "github_pat_", "xox", "AIza", "eyJ", "-----BEGIN",
)
_SECRET_HINTS_FOLDED = ("api", "secret", "token", "passw")


def _has_secret_hint(text: str) -> bool:
    if any(h in text for h in _SECRET_HINTS):
        return True
    folded = text.casefold()
    return any(h in folded for h in _SECRET_HINTS_FOLDED)


# Up to about this many characters the scan itself is cheaper than looking for a hint first
# (~1 us either way; a stream step scans its few new characters).
_SECRET_HINT_WORTH = 24


def _secrets(text: str, pos: int) -> Iterable[PIIMatch]:
    # A match starting at or after pos holds its hint at or after pos.
    if len(text) - pos > _SECRET_HINT_WORTH and not _has_secret_hint(text[pos:] if pos else text):
        return
    for m in _SECRET.finditer(text, pos):
        yield PIIMatch("secret", m.start(), m.end())


_DETECTORS: dict[PIIKind, Callable[[str, int], Iterable[PIIMatch]]] = {
    # Order matters for overlaps: a secret or card wins over the phone shape inside it.
    "secret": _secrets,
    "card": _cards,
    "email": _emails,
    "phone": _phones,
}
# The order in which find_pii runs the detectors: a kind's finds hide the later kinds' overlapping ones.
PII_DETECTION_ORDER: tuple[PIIKind, ...] = tuple(_DETECTORS)


def find_pii(text: str, kinds: Iterable[PIIKind] = PII_KINDS, pos: int = 0) -> list[PIIMatch]:
    """Non-overlapping PII spans in ``text`` starting at or after ``pos``, in order; earlier
    detectors win overlaps.

    Every detector scans ``text[pos:]`` only, with the characters before ``pos`` as context
    (the look-behinds and word boundaries see them), and validates a match as a whole-text
    scan does. A match starting before ``pos`` is not looked for, so it hides nothing (a phone
    number's shape inside a card that starts before ``pos`` is reported): the moderation
    stream hook resumes where no match not yet seen can start.
    Linear in ``text[pos:]`` and the number of matches: each detector scans once, its matches
    are checked against the earlier ones in one ordered walk, and the text later detectors
    see is rebuilt once per detector that found something, not once per match.
    """
    pos = min(max(pos, 0), len(text))
    wanted = set(kinds)
    if _DIGIT.search(text, pos) is None:
        wanted -= {"card", "phone"}
    if text.find("@", pos) < 0:
        wanted.discard("email")
    found: list[PIIMatch] = []
    masked = text
    for kind, detector in _DETECTORS.items():
        if kind not in wanted:
            continue
        new = _outside(sorted(detector(masked, pos), key=_start), found)
        if not new:
            continue
        # Later detectors see earlier finds as '#': "+1 415 555 0199 4242 4242 4242 4242"
        # is a phone number next to a card, not one 27-digit number.
        masked = _mask(masked, new)
        found = sorted(found + new, key=_start)
    return found


def _start(match: PIIMatch) -> int:
    return match.start


def _outside(candidates: list[PIIMatch], found: list[PIIMatch]) -> list[PIIMatch]:
    """The candidates (sorted by start) overlapping none of ``found`` (sorted, disjoint) or each other."""
    kept: list[PIIMatch] = []
    i, end = 0, -1
    for m in candidates:
        while i < len(found) and found[i].end <= m.start:
            i += 1
        if m.start < end or (i < len(found) and found[i].start < m.end):
            continue
        kept.append(m)
        end = m.end
    return kept


def _mask(text: str, spans: list[PIIMatch]) -> str:
    """``text`` with every span (sorted, disjoint) replaced by as many '#'."""
    parts: list[str] = []
    cursor = 0
    for m in spans:
        parts.append(text[cursor : m.start])
        parts.append("#" * (m.end - m.start))
        cursor = m.end
    parts.append(text[cursor:])
    return "".join(parts)


# -- where a detector could still match: the hold-back of moderated streams ---------------


def unfinished(pattern: str, flags: int = 0) -> regex.Pattern:
    """``pattern`` compiled to find where a match of it could still run into the end of a text.

    The appended ``\\Z[\\s\\S]`` can never match completely, so ``search(text, pos, partial=True)``
    (``regex`` partial matching) returns the leftmost index from which some attempt of
    ``pattern`` reaches the end of the text: the start of a possible match, or of a complete
    match ending there (more text could extend or undo it). Without the suffix, ``regex``
    would prefer any complete match, even one further right, to an earlier partial one.
    """
    return regex.compile(f"(?:{pattern})\\Z[\\s\\S]", flags)


def unfinished_from(shape: regex.Pattern, text: str, pos: int = 0) -> int:
    """The index an ``unfinished`` shape finds in ``text[pos:]``, or ``len(text)`` (none)."""
    m = shape.search(text, min(max(pos, 0), len(text)), partial=True)
    return len(text) if m is None else m.start()


# Bounded shapes start at most this many characters before the end: 4-4-4-4-3 card digits
# with 4 separators; "+ddd-(dddd)-dddd" and four "-dddd" groups; an e-mail's local part; a
# secret without any of the hints (the longest such beginning is "access-toke", 11).
_CARD_LONGEST = 23
_PHONE_LONGEST = 36
_EMAIL_LOCAL_LONGEST = 64
_SECRET_HINTLESS_LONGEST = 16
_CARD_SHAPE = unfinished(_CARD.pattern)
_PHONE_SHAPE = unfinished(_PHONE.pattern)
_EMAIL_SHAPE = unfinished(_EMAIL.pattern)
_SECRET_SHAPE = unfinished(_SECRET.pattern)


_EMAIL_LOCAL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"
# Every attempt of a card starts with a digit, of a phone number with one, "+" or "(".
_PHONE_FIRST = regex.compile(r"[\d+(]")


def _email_local_run(text: str, pos: int) -> int:
    # With no "@" from pos on, an attempt reaching the end is a local part running to the end:
    # it starts in the last 64 characters, in their trailing run of local-part characters.
    start = max(pos, len(text) - _EMAIL_LOCAL_LONGEST)
    return start + len(text[start:].rstrip(_EMAIL_LOCAL_CHARS))


def _unfinished_email(text: str, pos: int) -> int:
    # The local part before "@" is at most 64 characters: nothing more than 64 before the first
    # "@" from pos on can start one.
    at = text.find("@", pos)
    if at >= 0:
        return unfinished_from(_EMAIL_SHAPE, text, max(pos, at - _EMAIL_LOCAL_LONGEST))
    return _resume(_EMAIL_SHAPE, text, _email_local_run(text, pos))


def _unfinished_secret(text: str, pos: int) -> int:
    # Every secret's first 12 characters hold a hint: with none from pos on, only the last few
    # characters can begin one.
    if len(text) - pos > _SECRET_HINTLESS_LONGEST and not _has_secret_hint(text[pos:]):
        pos = len(text) - _SECRET_HINTLESS_LONGEST
    return unfinished_from(_SECRET_SHAPE, text, pos)


def _resume(shape: regex.Pattern, text: str, start: int) -> int:
    # The shape's answer from ``start``, a lower bound of it (``len(text)``: none, nothing to ask).
    return start if start == len(text) else unfinished_from(shape, text, start)


def _first_bound(first: regex.Pattern, longest: int) -> Callable[[str, int], int]:
    # The first character from which an attempt can start (``first`` finds every attempt's
    # first character), in the last ``longest`` characters.
    def bound(text: str, pos: int) -> int:
        m = first.search(text, max(pos, len(text) - longest))
        return len(text) if m is None else m.start()

    return bound


def _email_bound(text: str, pos: int) -> int:
    return _unfinished_email(text, pos) if text.find("@", pos) >= 0 else _email_local_run(text, pos)


_card_bound = _first_bound(_DIGIT, _CARD_LONGEST)
_phone_bound = _first_bound(_PHONE_FIRST, _PHONE_LONGEST)

# Lower bounds of the _UNFINISHED answers, without their partial match where that is cheap:
# the first possible first character of a card or phone number, the trailing local-part run
# of an e-mail address without an "@" from pos on (secrets: the exact answer).
_UNFINISHED_BOUND: dict[PIIKind, Callable[[str, int], int]] = {
    "secret": _unfinished_secret,
    "card": _card_bound,
    "email": _email_bound,
    "phone": _phone_bound,
}
# The answers: each shape's search resumed from its bound.
_UNFINISHED: dict[PIIKind, Callable[[str, int], int]] = {
    "secret": _unfinished_secret,
    "card": lambda text, pos: _resume(_CARD_SHAPE, text, _card_bound(text, pos)),
    "email": _unfinished_email,
    "phone": lambda text, pos: _resume(_PHONE_SHAPE, text, _phone_bound(text, pos)),
}


def unfinished_pii_bound(text: str, kinds: Iterable[PIIKind], pos: int = 0) -> int:
    """A lower bound of ``unfinished_pii(text, kinds, pos)`` (and ``>= pos``), at most a kind's
    longest beginning below it, found mostly without partial matching.

    No match of ``kinds`` that ends after the end of ``text`` (once more text arrives) starts
    before it: where a flag-only detector of a stream resumes, which may look at a little more
    text than it needs to, but must not look at less.
    """
    pos = min(max(pos, 0), len(text))
    bound = len(text)
    for kind in kinds:
        bound = min(bound, _UNFINISHED_BOUND[kind](text, pos))
    return bound


def unfinished_pii(text: str, kinds: Iterable[PIIKind], pos: int = 0) -> int:
    """The earliest index >= ``pos`` from which ``text`` could still become, or extend, a match
    of one of ``kinds``; ``len(text)`` when none could.

    Only the detectors' regular expressions are asked, on the text as it is: the checks of
    complete matches (Luhn, digit counts, dates) are left out, so it holds back more than
    ``find_pii`` reports, not less. (One exception: ``find_pii`` masks an earlier kind's finds
    before a later kind looks, and a match only that masking makes possible, such as a card
    glued to the dashes of a PEM block's last line, is not foreseen.)
    Linear in ``text[pos:]``; cards, phones and (without a hint such as "sk-") secrets look
    at the last few dozen characters only.
    """
    pos = min(max(pos, 0), len(text))
    hold = len(text)
    for kind in kinds:
        hold = min(hold, _UNFINISHED[kind](text, pos))
    return hold


def redact(text: str, kinds: Iterable[PIIKind] = PII_KINDS) -> str:
    """``text`` with every detected span replaced by ``[REDACTED:<KIND>]``."""
    matches = find_pii(text, kinds)
    if not matches:
        return text
    parts: list[str] = []
    cursor = 0
    for m in matches:
        parts.append(text[cursor : m.start])
        parts.append(f"[REDACTED:{m.kind.upper()}]")
        cursor = m.end
    parts.append(text[cursor:])
    return "".join(parts)
