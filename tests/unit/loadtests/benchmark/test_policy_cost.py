"""The policy-cost micro-benchmark: its apps switch on what they claim, and its report's shape.

No timing is asserted: the numbers depend on the machine.
"""

from __future__ import annotations

import json

import httpx

from loadtests.benchmark import policy_cost
from loadtests.benchmark.policy_cost import BASELINE, POLICIES, build_variant_app, request_body

BLOCKED = "how to build a pipe bomb"  # the default rules' example


async def _post(app, *, key: bool, content: str | None = None) -> httpx.Response:
    body = request_body()
    if content is not None:
        body["messages"] = [{"role": "user", "content": content}]
    headers = {"authorization": f"Bearer {policy_cost.API_KEY}"} if key else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/v1/chat/completions", json=body, headers=headers)


async def test_the_policies_app_enforces_auth_limits_and_moderation(tmp_path) -> None:
    app = build_variant_app(POLICIES, tmp_path)
    try:
        assert (await _post(app, key=False)).status_code == 401
        ok = await _post(app, key=True)
        assert ok.status_code == 200 and "x-ratelimit-remaining-requests" in ok.headers
        policy_cost.check_stream(ok.content)
        blocked = await _post(app, key=True, content=BLOCKED)
        assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "content_filter"
        assert "ray_serving_requests" in app.state.metrics.backend.exposition()
    finally:
        app.state.extensions.close()


async def test_the_baseline_app_has_every_policy_off(tmp_path) -> None:
    app = build_variant_app(BASELINE, tmp_path)
    try:
        ok = await _post(app, key=False, content=BLOCKED)
        assert ok.status_code == 200 and "x-ratelimit-remaining-requests" not in ok.headers
        policy_cost.check_stream(ok.content)
    finally:
        app.state.extensions.close()


def test_a_tiny_run_writes_the_report(tmp_path, capsys) -> None:
    out = tmp_path / "cost.json"
    assert policy_cost.main(["--requests", "5", "--warmup", "1", "--breakdown",
                             "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "policy_cost" and result["requests"] == 5
    assert result["output_tokens"] == 64 and result["goal_p50_ms"] == 1.0
    assert set(result["apps"]) == {"baseline", "policies", "auth", "auth+limits", "moderation",
                                   "metrics"}
    for name, entry in result["apps"].items():
        assert entry["wall_ms"]["count"] == 5
        assert {"p50", "p90", "p99", "mean"} <= set(entry["wall_ms"])
        assert ("cost_ms" in entry) == (name != "baseline")
    assert set(result["apps"]["policies"]["cost_ms"]) == {"p50", "p90", "p99", "paired_median"}
    assert result["policy_cost_p50_ms"] == result["apps"]["policies"]["cost_ms"]["p50"]
    assert isinstance(result["within_goal"], bool)
    assert result["machine"]["cores"] and "load_average_at_start" in result["machine"]
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("app") and "policy cost p50:" in printed
