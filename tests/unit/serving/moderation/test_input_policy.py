"""Input moderation through the OpenAI app: the event loop stays free, over-long input is refused."""

from __future__ import annotations

import asyncio
import gc
import time

from tests.unit.serving.privacy.test_pii import dense_pii

NO_CONTEXT_POLICY = {"context": {"policy": "off"}}


class LoopTicker:
    """Sleeps 10 ms in a loop and records the longest gap between two wake-ups.

    The garbage collector is off meanwhile: a full collection pauses every thread for a time
    that depends on the whole test process's heap, not on the code under test.
    """

    def __init__(self) -> None:
        self.longest_gap_s = 0.0
        self.ticks = 0
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "LoopTicker":
        gc.collect()
        gc.disable()
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            gc.enable()

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest_gap_s = max(self.longest_gap_s, now - last)
            self.ticks += 1
            last = now


async def test_a_pii_dense_prompt_does_not_block_the_event_loop(make_client) -> None:
    client, engine, op = make_client(NO_CONTEXT_POLICY, max_model_len=100_000)
    prompt = dense_pii(4200)  # ~200 KB, ~8400 e-mail addresses and phone numbers
    assert len(prompt) > 200_000
    async with LoopTicker() as ticker:
        r = await client.post("/v1/completions", json={"model": "fake-model", "prompt": prompt, "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert op.components["moderation_policy"].metrics.count("flag", "input", "pii/email") == 1
    assert ticker.longest_gap_s < 0.1, f"the event loop was blocked for {ticker.longest_gap_s:.3f}s"


async def test_input_over_the_moderation_limit_is_refused_not_passed_unchecked(make_client) -> None:
    client, engine, _ = make_client({**NO_CONTEXT_POLICY, "moderation": {"max_text_chars": 100}})
    prompt = await client.post("/v1/completions", json={"model": "fake-model", "prompt": "x" * 101})
    messages = [{"role": "user", "content": "y" * 60}, {"role": "user", "content": "z" * 60}]
    chat = await client.post("/v1/chat/completions", json={"model": "fake-model", "messages": messages})
    fits = await client.post("/v1/completions", json={"model": "fake-model", "prompt": "x" * 100, "max_tokens": 1})
    for r, param in ((prompt, "prompt"), (chat, "messages")):
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == param and error["code"] == "input_too_long" and "100" in error["message"]
    assert fits.status_code == 200
    assert len(engine.requests) == 1  # the refused requests never reached the engine
