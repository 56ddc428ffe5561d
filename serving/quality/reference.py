"""The reference run: greedy answers computed by transformers in float32 from a model folder.

The prompt is built exactly as the serving engine builds it (the folder's chat template
with the generation prompt, tokenized without extra special tokens), and tokens are
decoded one by one as vLLM decodes logprob tokens, so runs compare token for token.
"""

from __future__ import annotations

import os
from pathlib import Path

from serving.quality.prompts import PromptSet
from serving.quality.results import Answer, QualityRun, TokenStep


def reference_run(
    model_dir: str | Path,
    prompt_set: PromptSet,
    *,
    model: str,
    max_tokens: int = 24,
    top_k: int = 5,
) -> QualityRun:
    """Greedy answers with top-k candidates per token, transformers float32 on CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a hub look-up: local folders only
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    lm.eval()
    eos = lm.generation_config.eos_token_id
    stop_ids = set(eos if isinstance(eos, list) else [eos])
    prompts = [
        tokenizer.encode(
            tokenizer.apply_chat_template(case.messages(), add_generation_prompt=True, tokenize=False),
            add_special_tokens=False,
        )
        for case in prompt_set.cases
    ]
    generated = _greedy_batch(lm, prompts, max_tokens, top_k, stop_ids, pad_id=tokenizer.pad_token_id or 0)
    answers = []
    for case, steps in zip(prompt_set.cases, generated):
        ids = [chosen for chosen, _ in steps]
        finish = "stop" if ids and ids[-1] in stop_ids else "length"
        answers.append(
            Answer(
                id=case.id,
                text=tokenizer.decode(ids, skip_special_tokens=True),
                tokens=tuple(
                    TokenStep(token=_decode(tokenizer, chosen), top=tuple(_decode(tokenizer, t) for t in top))
                    for chosen, top in steps
                ),
                finish_reason=finish,
            )
        )
    return QualityRun(
        source=f"transformers float32 {folder}",
        model=model,
        prompt_set=prompt_set.name,
        max_tokens=max_tokens,
        top_k=top_k,
        answers=tuple(answers),
    )


def _greedy_batch(
    lm, prompts: list[list[int]], max_tokens: int, top_k: int, stop_ids: set[int], *, pad_id: int
) -> list[list[tuple[int, list[int]]]]:
    """Greedy decoding of all prompts at once (left-padded, KV cache).

    Returns per prompt the chosen token and the top-k candidates at each step, up to
    and including a stop token.
    """
    import torch

    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    steps: list[list[tuple[int, list[int]]]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    past = None
    with torch.inference_mode():
        for _ in range(max_tokens):
            out = lm(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                     past_key_values=past, use_cache=True)
            past = out.past_key_values
            logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            top = torch.topk(logprobs, top_k).indices.tolist()
            for row, candidates in enumerate(top):
                if not done[row]:
                    steps[row].append((candidates[0], candidates))
                    done[row] = candidates[0] in stop_ids
            if all(done):
                break
            input_ids = torch.tensor([[candidates[0]] for candidates in top])
            mask = torch.cat([mask, torch.ones(len(prompts), 1, dtype=mask.dtype)], dim=-1)
            positions = positions[:, -1:] + 1
    return steps


def _decode(tokenizer, token_id: int) -> str:
    """One token as vLLM shows it in logprobs (``decode`` of the single id)."""
    return tokenizer.decode([token_id]) or ""
