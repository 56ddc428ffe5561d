"""Workload data and sessions: prompts, long contexts, multi-turn history."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from loadtests.workloads import WORKLOAD_DIR, Workload, load_workload


@pytest.mark.parametrize("name", ["short_chat", "long_prompt", "long_output", "multi_turn"])
def test_packaged_workloads_load(name: str) -> None:
    workload = load_workload(name)
    assert workload.name == name
    spec = workload.new_session(random.Random(0)).next_request()
    assert spec is not None and spec.messages and spec.messages[-1]["role"] == "user"


def test_sessions_are_deterministic_for_a_seed() -> None:
    workload = load_workload("short_chat")
    first = [workload.new_session(random.Random(5)).next_request().messages for _ in range(3)]
    again = [workload.new_session(random.Random(5)).next_request().messages for _ in range(3)]
    assert first == again


def test_long_prompt_context_reaches_the_word_target_and_varies() -> None:
    workload = load_workload("long_prompt")
    assert workload.context is not None
    rng = random.Random(1)
    prompts = [workload.new_session(rng).next_request().messages[-1]["content"]
               for _ in range(6)]
    assert all(len(p.split()) >= workload.context.words for p in prompts)
    assert len({p[:200] for p in prompts}) > 1  # different starting paragraphs


def test_multi_turn_keeps_history_with_replies_and_system_prompt() -> None:
    workload = Workload(name="t", system_prompt="SYS", conversations=[["a", "b", "c"]])
    session = workload.new_session(random.Random(0))
    first = session.next_request()
    assert [m["role"] for m in first.messages] == ["system", "user"]
    second = session.next_request("reply one")
    assert second.messages == [
        {"role": "system", "content": "SYS"}, {"role": "user", "content": "a"},
        {"role": "assistant", "content": "reply one"}, {"role": "user", "content": "b"},
    ]
    assert second.turn == 1 and session.has_more
    third = session.next_request("reply two")
    assert len(third.messages) == 6 and not session.has_more
    assert session.next_request("reply three") is None


def test_completions_endpoint_sends_text() -> None:
    workload = Workload(name="t", endpoint="completions", system_prompt="S", prompts=["q"])
    spec = workload.new_session(random.Random(0)).next_request()
    assert spec.messages is None and spec.prompt == "System: S\nUser: q\nAssistant:"
    body = spec.body("m", stream=True, temperature=0.0, extra={"ignore_eos": True})
    assert body["prompt"] == spec.prompt and body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_a_workload_has_prompts_or_conversations() -> None:
    with pytest.raises(ValidationError):
        Workload(name="t")
    with pytest.raises(ValidationError):
        Workload(name="t", prompts=["a"], conversations=[["b"]])


def test_every_data_file_is_a_valid_workload() -> None:
    files = sorted(WORKLOAD_DIR.glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        load_workload(path)
