"""The real vLLM adapter on the tiny model, in process (no Ray): a request carrying its
``prompt_token_ids`` (the request path tokenized it once) generates exactly what the same
request generates from its messages, and the engine does not tokenize it again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from serving.config.settings import EngineSettings
from serving.engine.protocol import GenerateRequest, SamplingOptions
from serving.engine.vllm_engine import VLLMEngine, engine_environment

MESSAGES = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Name three colours of the rainbow."},
)


async def _generate(engine: VLLMEngine, request: GenerateRequest) -> tuple[str, int]:
    text, prompt_tokens = "", 0
    async for out in engine.generate(request):
        prompt_tokens = out.prompt_tokens
        text += "".join(c.text for c in out.choices)
    return text, prompt_tokens


async def test_carried_token_ids_generate_what_the_messages_generate(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = EngineSettings(max_model_len=512, max_num_seqs=4, kv_cache_gib=0.25)
    for name, value in engine_environment(settings).items():
        monkeypatch.setenv(name, value)
    engine = VLLMEngine(tiny_model_dir, model_id="tiny-llama", settings=settings)
    await engine.start()
    try:
        greedy = SamplingOptions(max_tokens=12, temperature=0.0)
        request = GenerateRequest(request_id="from-messages", sampling=greedy, messages=MESSAGES)
        ids = await engine.tokenize(request)
        assert ids and all(isinstance(i, int) for i in ids)
        assert await engine.count_prompt_tokens(request) == len(ids)

        expected, expected_prompt = await _generate(engine, request)
        assert expected_prompt == len(ids)

        def no_second_tokenization(_request: GenerateRequest) -> list[int]:
            raise AssertionError("generate tokenized a request that carried its prompt_token_ids")

        monkeypatch.setattr(engine, "encode_prompt", no_second_tokenization)
        carried = dataclasses.replace(request, request_id="from-ids", prompt_token_ids=ids)
        text, prompt_tokens = await _generate(engine, carried)
        assert (text, prompt_tokens) == (expected, len(ids))
    finally:
        await engine.shutdown()
