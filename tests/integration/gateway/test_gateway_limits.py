"""API keys and per-key limits on the real stack: split topology, two ingress replicas.

The limits are enforced by one shared Ray actor, so a key limited to N requests per
minute gets exactly N successes in total, whichever ingress replica each request hits.
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Stack

FREE = "sk-it-free-0123456789abcdef"  # 4 requests per minute
METERED = "sk-it-metered-0123456789ab"  # 300 tokens per minute
PRO = "sk-it-pro-0123456789abcdef"  # unlimited
RPM = 4
TPM = 300


KEYS_YAML = (
    "keys:\n"
    f"  - {{key: {FREE}, tier: free}}\n"
    f"  - {{key: {METERED}, tier: metered}}\n"
    f"  - {{key: {PRO}, tier: pro}}\n"
)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gateway") / "keys.yaml"
    path.write_text(KEYS_YAML)
    return path


@pytest.fixture(scope="module")
def limited_stack(deploy_stack, keys_file: Path) -> Stack:
    keys = keys_file
    return deploy_stack(
        {
            "http": {"topology": "split", "ingress_replicas": 2},
            "gateway": {
                "auth": {"enabled": True, "keys_file": str(keys), "reload_interval_s": 1},
                "limits": {
                    "tiers": {
                        "default": {},
                        "pro": {},
                        "free": {"rpm": RPM},
                        "metered": {"tpm": TPM},
                    }
                },
            },
        }
    )


def client(stack: Stack, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.api_base, api_key=key or "", max_retries=0, timeout=60)


def chat_body(stack: Stack, **extra) -> dict:
    return {
        "model": stack.model,
        "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": 2,
        **extra,
    }


def test_missing_and_wrong_key_are_401_right_key_is_200(limited_stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        client(limited_stack, "sk-it-wrong-000000000000").chat.completions.create(**chat_body(limited_stack))
    assert wrong.value.status_code == 401
    assert wrong.value.body["type"] == "authentication_error"
    assert "sk-it-wrong" not in str(wrong.value.body)
    missing = httpx.post(f"{limited_stack.api_base}/chat/completions", json=chat_body(limited_stack), timeout=60)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    ok = client(limited_stack, PRO).chat.completions.create(**chat_body(limited_stack))
    assert ok.choices[0].finish_reason in ("stop", "length")


def _replicas_with_rate_limit_decisions(stack: Stack, timeout_s: float = 30.0) -> set[str]:
    """The ingress replicas that exported rate-limit decisions (Ray exports every few seconds)."""
    deadline = time.monotonic() + timeout_s
    replicas: set[str] = set()
    while time.monotonic() < deadline:
        with urllib.request.urlopen(stack.metrics_url, timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith("ray_serving_gateway_decisions_total{") and 'policy="rate_limit"' in line:
                match = re.search(r'replica="([^"]+)"', line)
                if match:
                    replicas.add(match.group(1))
        if len(replicas) >= 2:
            break
        time.sleep(1)
    return replicas


def test_n_rpm_exactly_n_successes_across_two_ingress_replicas(limited_stack: Stack) -> None:
    responses = [
        httpx.post(
            f"{limited_stack.api_base}/chat/completions",
            json=chat_body(limited_stack),
            headers={"authorization": f"Bearer {FREE}"},
            timeout=60,
        )
        for _ in range(12)
    ]
    codes = [r.status_code for r in responses]
    assert codes == [200] * RPM + [429] * (12 - RPM)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:RPM]] == ["3", "2", "1", "0"]
    for r in responses:
        assert r.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert re.fullmatch(r"\d+(\.\d+)?(ms|s)|\d+m[\d.]+s", r.headers["x-ratelimit-reset-requests"])
    for r in responses[RPM:]:
        # 4 rpm refills one request every 15 s.
        assert 1 <= int(r.headers["retry-after"]) <= 15
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        error = r.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    # Both ingress replicas took part: the limit held because the counters are shared.
    assert len(_replicas_with_rate_limit_decisions(limited_stack)) == 2


def test_token_limit_is_charged_real_usage(limited_stack: Stack) -> None:
    """Remaining tokens fall by each response's real usage (prompt + completion), not the reservation."""
    metered = client(limited_stack, METERED)
    seen: list[tuple[int, int, float]] = []  # (remaining after reserving, real usage, time)
    for _ in range(4):
        raw = metered.chat.completions.with_raw_response.create(**chat_body(limited_stack, max_tokens=8))
        usage = raw.parse().usage
        seen.append((int(raw.headers["x-ratelimit-remaining-tokens"]), usage.total_tokens, time.monotonic()))
        assert raw.headers["x-ratelimit-limit-tokens"] == str(TPM)
    refill_per_s = TPM / 60
    for (before, used, t0), (after, _, t1) in zip(seen, seen[1:]):
        # Identical requests reserve the same, so the difference is the previous real usage (+ refill).
        drop = before - after
        assert used - refill_per_s * (t1 - t0) - 1 <= drop <= used + 1
    # A request whose reservation no longer fits is refused, with when to retry.
    with pytest.raises(openai.RateLimitError) as info:
        metered.chat.completions.create(**chat_body(limited_stack, max_tokens=250))
    headers = info.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert int(headers["x-ratelimit-remaining-tokens"]) < 250
    assert "tokens per minute" in info.value.body["message"]


def test_keys_reload_without_restart(limited_stack: Stack, keys_file: Path) -> None:
    """A key added to the file works within the reload interval; a removed one stops working."""
    new_key = "sk-it-rotated-0123456789ab"

    def status(key: str) -> int:
        return httpx.post(
            f"{limited_stack.api_base}/chat/completions",
            json=chat_body(limited_stack, max_tokens=1),
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        ).status_code

    def settle(key: str, expected: int) -> list[int]:
        # Both ingress replicas must see the change: wait for several answers in a row.
        deadline = time.monotonic() + 30
        streak: list[int] = []
        while time.monotonic() < deadline and streak[-6:] != [expected] * 6:
            streak.append(status(key))
            time.sleep(0.2)
        return streak[-6:]

    assert status(new_key) == 401
    keys_file.write_text(KEYS_YAML + f"  - {{key: {new_key}, tier: pro}}\n")
    try:
        assert settle(new_key, 200) == [200] * 6
    finally:
        keys_file.write_text(KEYS_YAML)
    assert settle(new_key, 401) == [401] * 6
