"""Agreement rules: exact, close (vLLM's top-k criterion at the first divergence), not close."""

import pytest

from serving.quality.compare import compare_answers, compare_runs
from serving.quality.results import Answer, QualityRun, TokenStep


def answer(*steps: tuple[str, tuple[str, ...]], id: str = "q") -> Answer:
    return Answer(id=id, text="".join(t for t, _ in steps), tokens=tuple(TokenStep(token=t, top=top) for t, top in steps))


def test_same_tokens_are_exact() -> None:
    a = answer(("The", ("The", "L")), (" end", (" end", ".")))
    verdict = compare_answers(a, a)
    assert verdict.exact and verdict.close and verdict.diverged_at is None


def test_a_near_tie_flip_is_close_but_not_exact() -> None:
    ours = answer(("L", ("L", "The")), ("'", ("'",)))
    ref = answer(("The", ("The", "L")), (" capital", (" capital",)))
    verdict = compare_answers(ours, ref)
    assert not verdict.exact and verdict.close and verdict.diverged_at == 0
    assert "near-tie" in verdict.detail


def test_a_token_outside_the_other_sides_top_k_is_not_close() -> None:
    ours = answer(("A", ("A", "B")), (" x", (" x",)))
    ref = answer(("A", ("A", "C")), (" y", (" y", " z")))  # " x" is not among the reference's candidates
    verdict = compare_answers(ours, ref)
    assert not verdict.close and verdict.diverged_at == 1
    assert "' x'" in verdict.detail


def test_the_check_is_symmetric() -> None:
    ours = answer(("A", ("A", "B")),)
    ref = answer(("B", ("B", "C")),)  # ours is not in the reference's top; the reverse holds
    assert not compare_answers(ours, ref).close
    assert not compare_answers(ref, ours).close


def test_only_positions_up_to_the_first_divergence_count() -> None:
    ours = answer(("A", ("A", "B")), ("!", ("!",)), ("?", ("?",)))
    ref = answer(("B", ("B", "A")), ("x", ("x",)), ("y", ("y",)))
    assert compare_answers(ours, ref).close  # after A/B the sequences are no longer comparable


def test_a_shorter_answer_with_equal_prefix_is_close_not_exact() -> None:
    ours = answer(("A", ("A",)),)
    ref = answer(("A", ("A",)), ("B", ("B",)))
    verdict = compare_answers(ours, ref)
    assert verdict.close and not verdict.exact and verdict.diverged_at == 1


def run(*answers: Answer, greedy: bool = True) -> QualityRun:
    return QualityRun(source="s", model="m", prompt_set="p", max_tokens=4, top_k=2, greedy=greedy, answers=answers)


def test_runs_compare_case_by_case_and_need_every_case_in_the_reference() -> None:
    a, b = answer(("A", ("A",)), id="a"), answer(("B", ("B",)), id="b")
    assert [v.exact for v in compare_runs(run(a, b), run(b, a))] == [True, True]
    with pytest.raises(ValueError, match="no answers for"):
        compare_runs(run(a, b), run(a))


def test_sampled_runs_are_not_compared() -> None:
    a = answer(("A", ("A",)), id="a")
    with pytest.raises(ValueError, match="greedy"):
        compare_runs(run(a, greedy=False), run(a))
