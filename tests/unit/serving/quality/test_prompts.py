"""The shipped prompt set and how answers are scored."""

import pytest

from serving.quality.prompts import PromptCase, PromptSet, load_prompt_set


def test_the_shipped_set_loads_with_at_least_twenty_distinct_cases() -> None:
    prompts = load_prompt_set()
    assert len(prompts.cases) >= 20
    assert len({c.id for c in prompts.cases}) == len(prompts.cases)
    assert any(c.prompt == "What is the capital of France?" for c in prompts.cases)  # the README's


def test_an_answer_is_right_when_it_contains_an_expected_answer_in_any_case() -> None:
    case = PromptCase(id="c", prompt="Capital of France?", expected=("Paris",))
    assert case.is_correct("The capital of France is PARIS.")
    assert not case.is_correct("L'Étoile, la Marseillaise")


def test_duplicate_ids_are_refused() -> None:
    case = PromptCase(id="c", prompt="q", expected=("a",))
    with pytest.raises(ValueError, match="distinct"):
        PromptSet(name="x", cases=(case, case))
