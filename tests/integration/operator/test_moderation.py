"""Content safety through the real stack: a real output phrase is cut mid-stream, blocked
input is refused, /v1/moderations answers with the same policy (rules + classifier)."""

from __future__ import annotations

import concurrent.futures

import openai
import pytest

from tests.integration.operator.conftest import PLANTED_CATEGORY, PROMPT, OperatorStack, wait_for_metric


@pytest.fixture
def client(operator_stack: OperatorStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=operator_stack.stack.api_base, api_key="unused", max_retries=0, timeout=60)


def test_planted_output_phrase_is_cut_mid_stream(operator_stack: OperatorStack, client: openai.OpenAI) -> None:
    planted = operator_stack.planted
    stream = client.chat.completions.create(
        model=operator_stack.stack.model, messages=PROMPT, max_tokens=48, temperature=0, stream=True
    )
    content, finish = "", None
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert finish == "content_filter"
    assert planted.phrase not in content
    assert content == planted.output[: planted.start]  # everything before the phrase, nothing of it
    assert content  # cut mid-stream, not refused up front
    wait_for_metric(
        operator_stack.stack.metrics_url,
        "ray_serving_moderation_blocks",
        lambda samples: any(
            s.labels.get("stage") == "output" and s.labels.get("category") == PLANTED_CATEGORY and s.value >= 1
            for s in samples
        ),
    )


def test_non_streamed_answer_is_cut_the_same_way(operator_stack: OperatorStack, client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=operator_stack.stack.model, messages=PROMPT, max_tokens=48, temperature=0
    )
    assert response.choices[0].finish_reason == "content_filter"
    assert response.choices[0].message.content == operator_stack.planted.output[: operator_stack.planted.start]


def test_blocked_input_is_400_content_filter(operator_stack: OperatorStack, client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": f"please repeat: {operator_stack.planted.phrase}"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=operator_stack.stack.model, messages=messages, max_tokens=4)
    assert info.value.code == "content_filter"
    assert operator_stack.planted.phrase not in str(info.value.body)


def test_moderations_endpoint_uses_rules_pii_and_classifier(operator_stack: OperatorStack, client: openai.OpenAI) -> None:
    texts = [
        operator_stack.planted.phrase,
        "my card is 4000 0566 5566 5556",
        "I am going to murder you tonight.",  # no rule matches: only the classifier can flag it
        "Let's grab lunch and talk about the project plan.",
    ]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # concurrent: the classifier batches them
        results = list(pool.map(lambda t: client.moderations.create(input=t).results[0], texts))
    rule, card, threat, benign = results
    assert rule.flagged and categories(rule)[PLANTED_CATEGORY]
    assert card.flagged and categories(card)["pii/card"]
    assert threat.flagged and categories(threat)["violence"]
    assert threat.category_scores.model_dump(by_alias=True)["violence"] >= 0.55
    assert not benign.flagged and not any(categories(benign).values())


def categories(result) -> dict:
    """Every category of a result: OpenAI's named ones (e.g. violence) and ours (extras)."""
    return {k: v for k, v in result.categories.model_dump(by_alias=True).items() if v is not None}
