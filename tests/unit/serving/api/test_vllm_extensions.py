"""vLLM's extension parameters on chat and completions: validated, then handed to the engine.

What the engine does with them is proven on the real engine (tests/integration); here: the
wire rules (a clear 400 naming the parameter) and that each value reaches the engine request.
"""

from __future__ import annotations

import httpx
import pytest

from serving.config.settings import Settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import ChatTemplateOptions
from tests.unit.apps import build_app

MODEL = "fake-model"
MESSAGES = [{"role": "user", "content": "hi"}]


async def post(route: str, body: dict, engine: FakeEngine | None = None) -> tuple[httpx.Response, FakeEngine]:
    engine = engine or FakeEngine()
    app = build_app(Settings(), engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.post(route, json={"model": MODEL, **body}), engine


async def chat(**extra) -> tuple[httpx.Response, FakeEngine]:
    return await post("/v1/chat/completions", {"messages": MESSAGES, **extra})


async def test_sampling_extensions_reach_the_engine_on_both_routes() -> None:
    extensions = {"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "min_tokens": 2,
                  "ignore_eos": True, "skip_special_tokens": False, "spaces_between_special_tokens": False,
                  "include_stop_str_in_output": True, "length_penalty": 1.0, "max_tokens": 4}
    for route, body in (("/v1/chat/completions", {"messages": MESSAGES}), ("/v1/completions", {"prompt": "hi"})):
        r, engine = await post(route, {**body, **extensions})
        assert r.status_code == 200, r.text
        sampling = engine.requests[-1].sampling
        assert (sampling.top_k, sampling.min_p, sampling.repetition_penalty) == (5, 0.1, 1.2)
        assert (sampling.min_tokens, sampling.ignore_eos, sampling.include_stop_str_in_output) == (2, True, True)
        assert not sampling.skip_special_tokens and not sampling.spaces_between_special_tokens


async def test_omitted_extensions_keep_vllm_defaults_and_the_models_own() -> None:
    r, engine = await chat()
    sampling = engine.requests[-1].sampling
    assert (sampling.top_k, sampling.min_p, sampling.repetition_penalty, sampling.min_tokens) == (0, 0.0, 1.0, 0)
    assert not sampling.ignore_eos and sampling.skip_special_tokens and sampling.spaces_between_special_tokens
    from serving.engine.protocol import SamplingDefaults

    tuned = FakeEngine(FakeEngineConfig(sampling_defaults=SamplingDefaults(top_k=40, repetition_penalty=1.1)))
    await chat_with(tuned)
    assert (tuned.requests[-1].sampling.top_k, tuned.requests[-1].sampling.repetition_penalty) == (40, 1.1)
    await chat_with(tuned, top_k=-1, repetition_penalty=1.0)  # the client's value wins; -1 is vLLM's "off"
    assert (tuned.requests[-1].sampling.top_k, tuned.requests[-1].sampling.repetition_penalty) == (0, 1.0)


async def chat_with(engine: FakeEngine, **extra) -> httpx.Response:
    r, _ = await post("/v1/chat/completions", {"messages": MESSAGES, **extra}, engine)
    assert r.status_code == 200, r.text
    return r


async def test_ignore_eos_and_min_tokens_generate_past_the_end_of_sequence() -> None:
    # The fake's script is 6 tokens; its end is the end of sequence.
    r, _ = await chat(max_tokens=10, ignore_eos=True)
    assert r.json()["usage"]["completion_tokens"] == 10 and r.json()["choices"][0]["finish_reason"] == "length"
    r, _ = await chat(max_tokens=10, min_tokens=8)
    assert r.json()["usage"]["completion_tokens"] == 8 and r.json()["choices"][0]["finish_reason"] == "stop"
    r, _ = await chat(max_tokens=10)
    assert r.json()["usage"]["completion_tokens"] == 6


@pytest.mark.parametrize(("extra", "param", "words"), [
    ({"top_k": -2}, "top_k", "greater than or equal to -1"),
    ({"min_p": 1.5}, "min_p", "less than or equal to 1"),
    ({"repetition_penalty": 0}, "repetition_penalty", "greater than 0"),
    ({"min_tokens": -1}, "min_tokens", "greater than or equal to 0"),
    ({"min_tokens": 5, "max_tokens": 4}, "min_tokens", "min_tokens (5) must not exceed max_tokens (4)"),
    ({"ignore_eos": "yes please"}, "ignore_eos", "valid boolean"),
    ({"priority": 2**40}, "priority", "less than or equal to"),
    ({"request_id": "two words"}, "request_id", "request_id must be"),
    ({"add_generation_prompt": True, "continue_final_message": True}, "continue_final_message", "needs add_generation_prompt"),
    ({"add_generation_prompt": False, "continue_final_message": True}, "continue_final_message", "the assistant's"),
    ({"chat_template_kwargs": {"tokenize": True}}, "chat_template_kwargs", "must not set 'tokenize'"),
    ({"chat_template_kwargs": {"not a name": 1}}, "chat_template_kwargs", "not a template variable name"),
    ({"chat_template_kwargs": {f"k{i}": i for i in range(17)}}, "chat_template_kwargs", "at most 16"),
    ({"chat_template_kwargs": {"k": "x" * 5000}}, "chat_template_kwargs", "at most 4096 bytes"),
    ({"structured_outputs": {}}, "structured_outputs", "exactly one of"),
    ({"structured_outputs": {"regex": "a+", "choice": ["a"]}}, "structured_outputs", "exactly one of"),
    ({"structured_outputs": {"regex": "a" * 5000}}, "structured_outputs.regex", "at most 4096"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs.choice", "at least 1"),
    ({"structured_outputs": {"choice": ["ok", ""]}}, "structured_outputs.choice", "1 to 1024 characters"),
    ({"structured_outputs": {"json": "{not json"}}, "structured_outputs.json", "not valid JSON"),
    ({"structured_outputs": {"json": "[1]"}}, "structured_outputs.json", "must be a JSON object"),
    ({"structured_outputs": {"bogus": 1}}, "structured_outputs.bogus", "Unrecognized request argument"),
    ({"structured_outputs": {"regex": "a"}, "response_format": {"type": "json_object"}}, "structured_outputs", "not both"),
    ({"use_beam_search": True}, "use_beam_search", "not supported"),
])
async def test_bad_extension_values_get_a_400_naming_them(extra: dict, param: str | None, words: str) -> None:
    r, engine = await chat(**extra)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert words in error["message"] and not error["message"].startswith("Value error"), error
    if param is not None:
        assert error["param"] == param, error
    assert engine.requests == []


async def test_structured_outputs_become_one_engine_constraint() -> None:
    cases = {
        "regex": ({"regex": "[0-9]+"}, lambda s: s.regex == "[0-9]+"),
        "choice": ({"choice": ["yes", "no"]}, lambda s: s.choice == ("yes", "no")),
        "grammar": ({"grammar": 'root ::= "a"'}, lambda s: s.grammar == 'root ::= "a"'),
        "json": ({"json": {"type": "object"}}, lambda s: s.json_schema == {"type": "object"}),
        "json text": ({"json": '{"type": "integer"}'}, lambda s: s.json_schema == {"type": "integer"}),
        "json_object": ({"json_object": True}, lambda s: s.json_object and s.json_schema is None),
    }
    for name, (constraint, holds) in cases.items():
        r, engine = await post("/v1/completions", {"prompt": "x", "structured_outputs": constraint})
        assert r.status_code == 200, (name, r.text)
        sampling = engine.requests[-1].sampling
        assert holds(sampling), name
        set_ = [f for f in ("json_schema", "regex", "choice", "grammar") if getattr(sampling, f) is not None]
        assert len(set_) + sampling.json_object == 1, name


async def test_chat_template_options_and_priority_reach_the_engine() -> None:
    messages = [*MESSAGES, {"role": "assistant", "content": "Once upon"}]
    r, engine = await post("/v1/chat/completions", {
        "messages": messages, "add_generation_prompt": False, "continue_final_message": True,
        "chat_template_kwargs": {"enable_thinking": False}, "priority": -3, "request_id": "bench-0001",
    })
    assert r.status_code == 200, r.text
    request = engine.requests[-1]
    assert request.chat_template == ChatTemplateOptions(False, True, {"enable_thinking": False})
    assert request.priority == -3
    assert r.json()["id"].startswith("chatcmpl-") and "bench-0001" not in r.json()["id"]  # ours stays unique
    r, engine = await chat()
    assert engine.requests[-1].chat_template == ChatTemplateOptions() and engine.requests[-1].priority == 0


async def test_unknown_parameters_are_still_named() -> None:
    r, _ = await chat(guided_choise=["a"])
    assert r.status_code == 400 and "guided_choise" in r.json()["error"]["message"]
