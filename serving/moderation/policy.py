"""The moderation policy: rules, PII detectors and an optional classifier -> a verdict.

Rules and PII detectors are synchronous, linear in the text, and report where they
matched (the stream hook needs the positions to cut before a match); ``hold_from`` tells
the stream hook where a blocking one could still match once more text arrives, and
``match_stream`` looks at a stream's window only where a match not seen before could be
(a ``StreamCursor`` remembers where). Rules are
compiled with the ``regex`` module, whose partial matching answers that; on long input
``check`` runs them in a worker thread so the event loop keeps serving other requests.
Text longer than ``max_text_chars`` is refused (``require_checkable``), never passed
unchecked. The classifier is an awaitable call to a Ray Serve deployment; when it
fails or times out the policy fails open on it (the rules' verdict stands) and counts
the error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Collection, Iterable, Protocol, Sequence

import regex

from serving.errors import InvalidRequestError
from serving.moderation.metrics import ModerationMetrics
from serving.config.moderation import Action, ModerationSettings
from serving.privacy.pii import (
    PII_DETECTION_ORDER,
    PII_KINDS,
    PIIKind,
    find_pii,
    unfinished,
    unfinished_from,
    unfinished_pii,
    unfinished_pii_bound,
)

logger = logging.getLogger(__name__)

# Texts up to this many characters in all are matched inline (well under a millisecond);
# longer ones in a worker thread, so that a long input never stalls the event loop.
INLINE_MATCH_CHARS = 4096


@dataclass(frozen=True)
class Detection:
    """One category found in a text (``start``/``end`` for rule and PII matches)."""

    category: str
    action: Action
    score: float = 1.0
    start: int = -1
    end: int = -1


@dataclass(frozen=True)
class Verdict:
    """Everything the policy found in one text."""

    detections: tuple[Detection, ...] = ()

    @property
    def blocked(self) -> bool:
        """True when any detection blocks."""
        return any(d.action == "block" for d in self.detections)

    @property
    def blocked_categories(self) -> tuple[str, ...]:
        """Categories that block, each once, in order of detection."""
        return tuple(dict.fromkeys(d.category for d in self.detections if d.action == "block"))

    @property
    def flagged_categories(self) -> tuple[str, ...]:
        """Categories reported without blocking."""
        blocked = set(self.blocked_categories)
        return tuple(
            dict.fromkeys(d.category for d in self.detections if d.action == "flag" and d.category not in blocked)
        )

    def score(self, category: str) -> float:
        """The highest score of ``category`` (0 when not detected)."""
        return max((d.score for d in self.detections if d.category == category), default=0.0)


class Classifier(Protocol):
    """Scores one text per category (0..1); the deployment batches many callers."""

    async def classify(self, text: str) -> dict[str, float]:
        """Scores per category."""
        ...


@dataclass(frozen=True)
class _CompiledRule:
    category: str
    action: Action
    pattern: regex.Pattern
    unfinished: regex.Pattern  # where it could still match once more text arrives

    def matches(self, text: str, pos: int) -> Iterable[Detection]:
        """Its non-empty matches starting at or after ``pos`` (the text before it is context)."""
        for m in self.pattern.finditer(text, pos):
            if m.end() > m.start():
                yield Detection(self.category, self.action, 1.0, m.start(), m.end())


def _compile(settings: ModerationSettings) -> tuple[_CompiledRule, ...]:
    compiled = []
    for rule in settings.rules:
        if rule.action == "off":
            continue
        expression = rule.expression()
        pattern = regex.compile(expression, regex.IGNORECASE)
        compiled.append(_CompiledRule(rule.category, rule.action, pattern, unfinished(expression, regex.IGNORECASE)))
    return tuple(compiled)


@dataclass
class StreamCursor:
    """Where ``match_stream`` resumes on one streamed text: indexes of the whole output (the
    window slides over it) before which no match not yet seen can start."""

    block_from: int = 0  # of a blocking match (``hold_from``'s answer, kept by the stream hook)
    rule_flags_from: dict[int, int] = field(default_factory=dict)  # of a flag-only rule's match, by rule index
    pii_flags_from: int = 0  # of a flag-only PII detector's match


class ModerationPolicy:
    """Checks text against the configured rules, PII detectors and classifier."""

    def __init__(
        self,
        settings: ModerationSettings,
        *,
        classifier: Classifier | None = None,
        metrics: ModerationMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier if settings.classifier.enabled else None
        self.metrics = metrics or ModerationMetrics("")
        self._rules = _compile(settings)
        pii = settings.pii.model_dump()
        self._pii_actions: dict[str, Action] = {kind: pii[kind] for kind in PII_KINDS if pii[kind] != "off"}
        self._unfinished = tuple(r.unfinished for r in self._rules if r.action == "block")
        self._pii_blocking = tuple(kind for kind, action in self._pii_actions.items() if action == "block")
        self._pii_order = tuple(kind for kind in PII_DETECTION_ORDER if kind in self._pii_actions)

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category this policy can report (the /v1/moderations keys)."""
        names = [r.category for r in self._rules]
        names += [f"pii/{kind}" for kind in self._pii_actions]
        if self.classifier is not None:
            names += list(self.settings.classifier.categories)
        return tuple(dict.fromkeys(names))

    def require_checkable(self, text: str, *, param: str) -> None:
        """Refuse (400 ``input_too_long``) a text longer than the policy checks in one piece."""
        limit = self.settings.max_text_chars
        if len(text) > limit:
            raise InvalidRequestError(
                f"The input is too long for the content policy: {len(text)} characters (at most {limit}).",
                param=param,
                code="input_too_long",
            )

    def match_rules(self, text: str) -> list[Detection]:
        """Rule and PII matches with their positions (cheap, synchronous)."""
        found: list[Detection] = []
        for rule in self._rules:
            found.extend(rule.matches(text, 0))
        return found + self._pii_matches(text, tuple(self._pii_actions), 0)

    def match_stream(
        self, text: str, base: int, cursor: StreamCursor, flagged: Collection[str] = ()
    ) -> list[Detection]:
        """The rule and PII matches of a stream's window ``text`` (``text[0]`` is character
        ``base`` of the output) that earlier windows did not see; ``cursor`` moves past this one.

        Blocking matches are looked for from ``cursor.block_from`` on, which the caller keeps at
        ``hold_from``'s answer: no blocking match can start before it (a complete one there was
        seen, and cut, in an earlier step). A flag-only detector looks from the earliest start
        of an attempt of it that reached the end of the previous window (or a little before;
        a match ending before that end was seen then), and not at all once its category is in
        ``flagged`` (a stream reports a category once). The PII detectors share one start, the
        lower of the two, because a detector's finds hide the later detectors' overlapping ones.
        Linear in the text after those positions, not in the window; ``match_rules`` is the
        whole-text answer, and a stream comes out as if every step had asked it.
        """
        size = len(text)
        block = min(max(cursor.block_from - base, 0), size)
        found: list[Detection] = []
        for i, rule in enumerate(self._rules):
            if rule.action == "block":
                found.extend(rule.matches(text, block))
            elif rule.category not in flagged:
                pos = min(max(cursor.rule_flags_from.get(i, 0) - base, 0), size)
                found.extend(rule.matches(text, pos))
                cursor.rule_flags_from[i] = base + unfinished_from(rule.unfinished, text, pos)
        kinds = self._pii_to_scan(flagged)
        flags = [kind for kind in kinds if self._pii_actions[kind] == "flag"]
        pos = block
        if flags:
            flag_pos = min(max(cursor.pii_flags_from - base, 0), size)
            pos = min(pos, flag_pos)
            cursor.pii_flags_from = base + unfinished_pii_bound(text, flags, flag_pos)
        return found + self._pii_matches(text, kinds, pos)

    def _pii_to_scan(self, flagged: Collection[str]) -> tuple[PIIKind, ...]:
        """The PII kinds a stream still needs: the blocking ones, the flag-only ones not yet
        flagged, and every kind detected before one of those (its finds hide overlapping ones)."""
        order = self._pii_order
        if not flagged:
            return order
        needed = [i for i, k in enumerate(order) if self._pii_actions[k] == "block" or f"pii/{k}" not in flagged]
        return order[: needed[-1] + 1] if needed else ()

    def _pii_matches(self, text: str, kinds: tuple[PIIKind, ...], pos: int) -> list[Detection]:
        if not kinds:
            return []
        actions = self._pii_actions
        return [Detection(f"pii/{m.kind}", actions[m.kind], 1.0, m.start, m.end) for m in find_pii(text, kinds, pos)]

    def hold_from(self, text: str, pos: int = 0) -> int:
        """The earliest index ``i >= pos`` from which ``text[i:]`` could still be, or become, a
        blocking match that more text could complete, extend or undo; ``len(text)`` if none.

        That is the start of a possible beginning of a blocking rule's or blocking PII
        detector's match (a ``regex`` partial match), or of a complete one that touches the
        end ("kill" could still become "killer"). Flag-only and off detectors never hold text
        back. PII is judged by the detectors' regular expressions alone (before the Luhn and
        digit-count checks), so it may hold back a number that will not be reported.
        Indexes below ``pos`` are not looked at (the caller knows none can start a match).
        Linear in ``text[pos:]``.
        """
        hold, pos = len(text), min(max(pos, 0), len(text))
        for shape in self._unfinished:
            hold = min(hold, unfinished_from(shape, text, pos))
        if self._pii_blocking:
            hold = min(hold, unfinished_pii(text, self._pii_blocking, pos))
        return hold

    async def classify(self, text: str) -> list[Detection]:
        """Classifier detections of ``text`` (none when off, failing or timed out)."""
        if self.classifier is None or not text.strip():
            return []
        cfg = self.settings.classifier
        try:
            scores = await asyncio.wait_for(self.classifier.classify(text), timeout=cfg.timeout_s)
        except Exception:
            logger.warning("moderation classifier failed; the rules' verdict stands", exc_info=True)
            self.metrics.classifier_error()
            return []
        return [
            Detection(category, cfg.action, float(score))
            for category, score in scores.items()
            if score >= cfg.threshold and cfg.action != "off"
        ]

    async def check(self, text: str, *, stage: str | None = None) -> Verdict:
        """The verdict on one whole text; counted under ``stage`` when given."""
        [detections] = await self._match_all([text])
        return await self._verdict(text, detections, stage)

    async def check_all(self, texts: Sequence[str], *, stage: str | None = None) -> list[Verdict]:
        """The verdicts on several whole texts, in order (one worker thread matches them all)."""
        matched = await self._match_all(texts)
        return list(await asyncio.gather(*(self._verdict(t, d, stage) for t, d in zip(texts, matched))))

    async def _match_all(self, texts: Sequence[str]) -> list[list[Detection]]:
        if sum(len(t) for t in texts) <= INLINE_MATCH_CHARS:
            return [self.match_rules(t) for t in texts]
        return await asyncio.to_thread(lambda: [self.match_rules(t) for t in texts])

    async def _verdict(self, text: str, detections: list[Detection], stage: str | None) -> Verdict:
        if not any(d.action == "block" for d in detections):
            detections += await self.classify(text)
        verdict = Verdict(tuple(detections))
        if stage is not None:
            self.metrics.verdict(stage, blocked=verdict.blocked_categories, flagged=verdict.flagged_categories)
        return verdict

    def scores(self, verdict: Verdict) -> dict[str, float]:
        """A score for every known category (for /v1/moderations)."""
        return {category: verdict.score(category) for category in self.categories}
