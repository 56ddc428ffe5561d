"""The HTTP layer on the fake engine (in-process ASGI): framing, errors, policies, hooks."""

from __future__ import annotations

import json
from typing import AsyncIterator

import httpx
import pytest

from tests.unit.apps import build_app, plus
from serving.config.settings import Settings
from serving.engine.fake import FakeEngine, FakeEngineConfig
from serving.engine.protocol import ChoiceDelta, GenerateOutput
from serving.errors import RateLimitError
from serving.core.context import RequestContext
from serving.core.result import RequestResult
from serving.engine.generation_defaults import sampling_defaults

MODEL = "fake-model"


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def chat_body(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], **extra}


def events(text: str) -> list[str]:
    return [block[len("data: ") :] for block in text.split("\n\n") if block]


async def test_stream_with_usage_and_two_choices() -> None:
    async with client_for(build_app(Settings(), FakeEngine())) as client:
        response = await client.post("/v1/chat/completions", json=chat_body(stream=True, n=2, stream_options={"include_usage": True}))
    data = events(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all("usage" in c for c in chunks)
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == 12 and usage["prompt_tokens"] == 5  # 2 choices x 6 tokens; 2 words + 3
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert "".join(c["delta"].get("content", "") for c in mine) == "Hello from the fake engine."
        assert mine[-1]["finish_reason"] == "stop"


async def test_failure_mid_stream_ends_with_error_event_then_done() -> None:
    engine = FakeEngine(FakeEngineConfig(fail_after_tokens=2))
    async with client_for(build_app(Settings(), engine)) as client:
        response = await client.post("/v1/chat/completions", json=chat_body(stream=True))
    data = events(response.text)
    assert response.status_code == 200
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["type"] == "server_error" and "fake engine failure" not in error["message"]


async def test_failure_before_first_token_is_plain_500_without_internals() -> None:
    engine = FakeEngine(FakeEngineConfig(fail_after_tokens=0))
    async with client_for(build_app(Settings(), engine)) as client:
        response = await client.post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 500
    assert "fake" not in response.json()["error"]["message"]


async def test_deadline_cuts_slow_generation_with_504() -> None:
    engine = FakeEngine(FakeEngineConfig(token_delay_s=0.5))
    settings = Settings(http={"request_timeout_s": 0.2})
    async with client_for(build_app(settings, engine)) as client:
        response = await client.post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert engine.running == set()


class CountingPolicy:
    """Refuses the second request; records what after() saw."""

    def __init__(self) -> None:
        self.seen = 0
        self.after_calls: list[tuple[int, int]] = []

    async def before(self, ctx: RequestContext):
        self.seen += 1
        ctx.response_headers["x-ratelimit-remaining-requests"] = str(max(0, 1 - self.seen))
        if self.seen > 1:
            raise RateLimitError("slow down", headers={"Retry-After": "3"})
        return None

    async def after(self, ctx: RequestContext, result: RequestResult) -> None:
        self.after_calls.append((result.prompt_tokens, result.completion_tokens))


async def test_policy_headers_refusal_and_usage_accounting() -> None:
    policy = CountingPolicy()
    app = build_app(Settings(), FakeEngine(), features=plus(policies=[policy]))
    async with client_for(app) as client:
        ok = await client.post("/v1/chat/completions", json=chat_body())
        refused = await client.post("/v1/chat/completions", json=chat_body())
    assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert policy.after_calls == [(5, 6), (0, 0)]


class CutAfterFirstToken:
    """A stream hook that ends every choice after its first delta with content_filter."""

    def wrap(self, ctx: RequestContext, stream: AsyncIterator[GenerateOutput]) -> AsyncIterator[GenerateOutput]:
        async def cut() -> AsyncIterator[GenerateOutput]:
            async for out in stream:
                yield GenerateOutput(
                    prompt_tokens=out.prompt_tokens,
                    choices=[ChoiceDelta(index=c.index, text=c.text, num_tokens=c.num_tokens, finish_reason="content_filter") for c in out.choices],
                )
                return

        return cut()


async def test_stream_hook_can_end_a_stream_with_content_filter() -> None:
    engine = FakeEngine()
    # Without output moderation: only the test's hook acts on the stream.
    settings = Settings(moderation={"enabled": False})
    app = build_app(settings, engine, features=plus(stream_hooks=[CutAfterFirstToken()]))
    async with client_for(app) as client:
        whole = await client.post("/v1/chat/completions", json=chat_body())
        streamed = await client.post("/v1/chat/completions", json=chat_body(stream=True))
    assert whole.json()["choices"][0]["finish_reason"] == "content_filter"
    assert whole.json()["choices"][0]["message"]["content"] == "Hello"
    chunks = [json.loads(d) for d in events(streamed.text)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert engine.running == set()  # the engine stream was closed (aborted)


@pytest.mark.parametrize(
    "body,param,code",
    [
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tools": []}, "tools", "unsupported_parameter"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "wat": 1}, "wat", None),
        ({"model": MODEL}, "messages", None),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, "top_logprobs", "invalid_value"),
        ({"model": MODEL, "prompt": "x"}, "messages", None),
    ],
)
async def test_validation_errors_name_the_parameter(body, param, code) -> None:
    async with client_for(build_app(Settings(), FakeEngine())) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == code


async def test_completions_prompt_list_of_one_and_of_two() -> None:
    async with client_for(build_app(Settings(), FakeEngine())) as client:
        one = await client.post("/v1/completions", json={"model": MODEL, "prompt": ["a b"], "max_tokens": 2})
        two = await client.post("/v1/completions", json={"model": MODEL, "prompt": ["a", "b"]})
    assert one.status_code == 200 and one.json()["choices"][0]["finish_reason"] == "length"
    assert two.status_code == 400 and two.json()["error"]["param"] == "prompt"


async def test_request_id_generated_or_echoed() -> None:
    async with client_for(build_app(Settings(), FakeEngine())) as client:
        given = await client.get("/v1/models", headers={"x-request-id": "abc-1"})
        hostile = await client.get("/v1/models", headers={"x-request-id": "bad id <script>"})
    assert given.headers["x-request-id"] == "abc-1"
    assert hostile.headers["x-request-id"].startswith("req-")


# -- generation defaults: the folder's generation_config.json, settings, the client ---------

LONG_REPLY = tuple(f" w{i}" for i in range(600))


def engine_for_folder(tmp_path, generation: dict | None = None, **config) -> FakeEngine:
    """A fake engine serving a folder whose generation_config.json sets temperature 0.3, top_p 0.8."""
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "temperature": 0.3, "top_p": 0.8}))
    overrides = Settings(model={"generation": generation or {}}).model.generation
    return FakeEngine(FakeEngineConfig(sampling_defaults=sampling_defaults(tmp_path, overrides), **config))


async def test_omitted_sampling_reaches_the_engine_with_the_folders_defaults(tmp_path) -> None:
    engine = engine_for_folder(tmp_path)
    async with client_for(build_app(Settings(), engine)) as client:
        chat = await client.post("/v1/chat/completions", json=chat_body())
        completion = await client.post("/v1/completions", json={"model": MODEL, "prompt": "a b"})
    assert chat.status_code == completion.status_code == 200
    for request in engine.requests:
        assert (request.sampling.temperature, request.sampling.top_p) == (0.3, 0.8)


async def test_settings_override_the_folder_and_the_client_overrides_both(tmp_path) -> None:
    engine = engine_for_folder(tmp_path, generation={"temperature": 0.6})
    async with client_for(build_app(Settings(), engine)) as client:
        await client.post("/v1/chat/completions", json=chat_body())
        await client.post("/v1/chat/completions", json=chat_body(temperature=0, top_p=1))
    assert [(r.sampling.temperature, r.sampling.top_p) for r in engine.requests] == [(0.6, 0.8), (0.0, 1.0)]


async def test_chat_without_max_tokens_is_capped_completions_keep_16(tmp_path) -> None:
    engine = engine_for_folder(tmp_path, reply=LONG_REPLY, max_model_len=2048)
    async with client_for(build_app(Settings(), engine)) as client:
        capped = await client.post("/v1/chat/completions", json=chat_body())
        asked = await client.post("/v1/chat/completions", json=chat_body(max_completion_tokens=520))
        completion = await client.post("/v1/completions", json={"model": MODEL, "prompt": "a b"})
    assert capped.json()["usage"]["completion_tokens"] == 512
    assert capped.json()["choices"][0]["finish_reason"] == "length"
    assert asked.json()["usage"]["completion_tokens"] == 520
    assert completion.json()["usage"]["completion_tokens"] == 16


async def test_the_cap_never_makes_a_long_prompt_a_400_but_an_explicit_max_tokens_does(tmp_path) -> None:
    engine = engine_for_folder(tmp_path, reply=LONG_REPLY, max_model_len=128)  # the 512 cap exceeds it
    long_prompt = [{"role": "user", "content": " ".join(["word"] * 100)}]  # 103 tokens: 25 left
    async with client_for(build_app(Settings(), engine)) as client:
        defaulted = await client.post("/v1/chat/completions", json=chat_body(messages=long_prompt))
        explicit = await client.post("/v1/chat/completions", json=chat_body(messages=long_prompt, max_tokens=50))
    assert defaulted.status_code == 200
    assert defaulted.json()["usage"]["completion_tokens"] == 25
    assert explicit.status_code == 400
    assert explicit.json()["error"]["code"] == "context_length_exceeded"
