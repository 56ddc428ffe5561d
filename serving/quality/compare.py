"""Agreement of two runs: exact, and close as vLLM's ``check_logprobs_close`` defines it.

Close: walking both token sequences together, at every position up to and including the
first divergence, each side's token is among the other side's top-k candidates. After
the first divergence the sequences are no longer comparable, so the walk stops there
(a near-tie flipped, not a wrong model). Exact: the same tokens, hence the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.quality.results import Answer, QualityRun


@dataclass(frozen=True)
class Agreement:
    """How one answer compares with the reference's answer to the same case."""

    id: str
    exact: bool
    close: bool
    diverged_at: int | None  # first token index where the two differ, None if they never do
    detail: str = ""


def compare_answers(ours: Answer, reference: Answer) -> Agreement:
    """Exact and close agreement of ``ours`` with ``reference`` (same case)."""
    for index, (mine, theirs) in enumerate(zip(ours.tokens, reference.tokens)):
        mine_ok = mine.token in theirs.top
        theirs_ok = theirs.token in mine.top
        if not (mine_ok and theirs_ok):
            detail = (
                f"token {index}: ours {mine.token!r} (top {list(mine.top)}) vs "
                f"reference {theirs.token!r} (top {list(theirs.top)})"
            )
            return Agreement(ours.id, exact=False, close=False, diverged_at=index, detail=detail)
        if mine.token != theirs.token:
            detail = f"token {index}: near-tie {mine.token!r} vs reference {theirs.token!r}"
            return Agreement(ours.id, exact=False, close=True, diverged_at=index, detail=detail)
    if len(ours.tokens) != len(reference.tokens):
        index = min(len(ours.tokens), len(reference.tokens))
        detail = f"lengths differ: {len(ours.tokens)} vs reference {len(reference.tokens)} tokens"
        return Agreement(ours.id, exact=False, close=True, diverged_at=index, detail=detail)
    return Agreement(ours.id, exact=True, close=True, diverged_at=None)


def compare_runs(run: QualityRun, reference: QualityRun) -> list[Agreement]:
    """Agreement of every case both runs answered, in the run's order."""
    if not (run.greedy and reference.greedy):
        raise ValueError("agreement compares greedy runs only (run without --served-defaults)")
    theirs = reference.by_id()
    missing = [a.id for a in run.answers if a.id not in theirs]
    if missing:
        raise ValueError(f"the reference has no answers for {missing}")
    return [compare_answers(answer, theirs[answer.id]) for answer in run.answers]
