"""Running a prompt set against an OpenAI-compatible server (greedy, with top-k logprobs).

Standard library only (urllib + threads): the check runs wherever the package is
installed, against this stack, vLLM's own server or any other OpenAI-compatible API.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving.quality.prompts import PromptCase, PromptSet
from serving.quality.results import Answer, QualityRun, TokenStep


class QualityClientError(RuntimeError):
    """The server could not be asked at all (unreachable, no model listed)."""


def served_models(base_url: str, *, api_key: str | None = None, timeout_s: float = 30.0) -> list[str]:
    """The model ids ``GET {base_url}/models`` lists."""
    data = _request(f"{base_url.rstrip('/')}/models", None, api_key, timeout_s)
    return [entry["id"] for entry in data.get("data", [])]


def run_prompt_set(
    base_url: str,
    prompt_set: PromptSet,
    *,
    model: str | None = None,
    max_tokens: int = 24,
    top_k: int = 5,
    concurrency: int = 4,
    api_key: str | None = None,
    timeout_s: float = 120.0,
    served_defaults: bool = False,
    repeat: int = 1,
) -> QualityRun:
    """Answers of every case from the server at ``base_url`` (``.../v1``).

    Greedy with top-k logprobs (comparable with a reference) by default. With
    ``served_defaults`` the request carries only ``model`` and ``messages``, as a plain
    chat client sends it, so the server's own sampling defaults and output cap apply;
    ``repeat`` then asks each case that many times (answers ``<id>#<i>``).
    """
    if model is None:
        models = served_models(base_url, api_key=api_key)
        if not models:
            raise QualityClientError(f"{base_url}/models lists no model")
        model = models[0]

    def ask(job: tuple[PromptCase, str]) -> Answer:
        case, answer_id = job
        body: dict[str, Any] = {"model": model, "messages": case.messages()}
        if not served_defaults:
            body.update(temperature=0, max_tokens=max_tokens, logprobs=True, top_logprobs=top_k)
        return _ask(base_url, case, answer_id, body, api_key=api_key, timeout_s=timeout_s)

    jobs = [
        (case, case.id if repeat == 1 else f"{case.id}#{i}")
        for case in prompt_set.cases
        for i in range(max(1, repeat))
    ]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        answers = tuple(pool.map(ask, jobs))
    return QualityRun(
        source=base_url, model=model, prompt_set=prompt_set.name, max_tokens=max_tokens,
        top_k=top_k, greedy=not served_defaults, answers=answers,
    )


def _ask(base_url: str, case: PromptCase, answer_id: str, body: dict[str, Any], *,
         api_key: str | None, timeout_s: float) -> Answer:
    started = time.perf_counter()
    try:
        data = _request(f"{base_url.rstrip('/')}/chat/completions", body, api_key, timeout_s)
    except QualityClientError as exc:
        return Answer(id=answer_id, text="", error=str(exc))
    latency = time.perf_counter() - started
    choice = data["choices"][0]
    content = (choice.get("logprobs") or {}).get("content") or []
    steps = tuple(
        TokenStep(token=entry["token"], top=tuple(t["token"] for t in entry.get("top_logprobs", ())))
        for entry in content
    )
    return Answer(
        id=answer_id,
        case=case.id,
        text=choice["message"].get("content") or "",
        tokens=steps,
        finish_reason=choice.get("finish_reason"),
        completion_tokens=(data.get("usage") or {}).get("completion_tokens"),
        latency_s=latency,
    )


def _request(url: str, body: dict[str, Any] | None, api_key: str | None, timeout_s: float) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        raise QualityClientError(f"HTTP {exc.code} from {url}: {detail}") from exc
    except (OSError, ValueError) as exc:
        raise QualityClientError(f"{url}: {exc}") from exc
