"""Input moderation through the OpenAI app: the event loop stays free, over-long input is refused."""

from __future__ import annotations

import threading

from tests.unit.serving.privacy.test_pii import dense_pii

NO_CONTEXT_POLICY = {"context": {"policy": "off"}}


class MatchThreads:
    """Records on which thread the moderation policy matched each text (its length and thread).

    Not a timing test: the property is that long input is matched on a worker thread, never
    on the event loop's (which a timer can only guess at on a loaded machine).
    """

    def __init__(self, policy) -> None:
        self.policy = policy
        self.calls: list[tuple[int, bool]] = []  # (characters, on the event loop's thread)

    def __enter__(self) -> "MatchThreads":
        loop_thread = threading.get_ident()
        original = self.policy.match_rules

        def recording(text: str):
            self.calls.append((len(text), threading.get_ident() == loop_thread))
            return original(text)

        self.policy.match_rules = recording
        return self

    def __exit__(self, *exc: object) -> None:
        del self.policy.match_rules  # the class's method again

    def on_loop(self) -> list[int]:
        """Lengths of the texts matched on the event loop's thread."""
        return [n for n, on_loop in self.calls if on_loop]


async def test_a_pii_dense_prompt_does_not_block_the_event_loop(make_client) -> None:
    client, engine, op = make_client(NO_CONTEXT_POLICY, max_model_len=100_000)
    prompt = dense_pii(4200)  # ~200 KB, ~8400 e-mail addresses and phone numbers
    assert len(prompt) > 200_000
    policy = op.components["moderation_policy"]
    with MatchThreads(policy) as threads:
        r = await client.post("/v1/completions", json={"model": "fake-model", "prompt": prompt, "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert policy.metrics.count("flag", "input", "pii/email") == 1
    assert len(prompt) in [n for n, _ in threads.calls]  # the whole prompt was matched ...
    assert threads.on_loop() == []  # ... and not on the event loop


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
