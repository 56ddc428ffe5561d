"""A tiny random Llama for integration tests: the real vLLM engine, started in seconds.

It has the default model's tokenizer and ChatML chat template (read from the same
packaged GGUF by the same code), so prompts tokenize, template and count exactly as
with the real model; only the weights are random (fixed seed), so the text is noise.
Built once into ``dest`` and reused, like the default model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serving.model.folder import build_once
from serving.model.hf_files import (
    load_gguf_tokenizer,
    save_bf16_weights,
    save_generation_config,
    save_model_config,
    save_tokenizer,
)
from serving.model.progress import Progress
from serving.model.source import gguf_fingerprint, packaged_gguf

TINY_VERSION = "2"
SEED = 0
# head_dim 32 is the smallest vLLM's CPU attention supports; one KV head keeps GQA in play.
# initializer_range 0.5 (not 0.02): with small random weights the tied output head just
# repeats the last prompt token; large ones make greedy output varied, visible text.
TINY_ARCHITECTURE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 2048,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
    "initializer_range": 0.5,
}


def tiny_fingerprint(gguf: Path) -> dict[str, Any]:
    """What a tiny model folder must have been built from to be reused."""
    return {
        "kind": "tiny-random-llama",
        "version": TINY_VERSION,
        "seed": SEED,
        "architecture": TINY_ARCHITECTURE,
        "tokenizer": gguf_fingerprint(gguf),
    }


def make_tiny_model(dest: Path) -> Path:
    """Build (once) a tiny random Llama with the default model's tokenizer in ``dest``."""
    gguf = packaged_gguf()
    return build_once(Path(dest), tiny_fingerprint(gguf), lambda tmp: _build(gguf, tmp))


def _build(gguf: Path, dest: Path) -> None:
    progress = Progress(total=2, prefix="[tiny-model]")
    with progress.stage("reading tokenizer from GGUF"):
        tokenizer = load_gguf_tokenizer(gguf)
    with progress.stage("writing random bf16 weights"):
        config = _tiny_config(tokenizer)
        save_bf16_weights(_random_state_dict(config), dest, tied=config.tie_word_embeddings)
        save_model_config(config, dest)
        save_tokenizer(tokenizer, dest, max_length=config.max_position_embeddings)
        save_generation_config(tokenizer, dest)


def _tiny_config(tokenizer):  # -> transformers.LlamaConfig
    """The tiny architecture with the tokenizer's vocabulary and special token ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        **TINY_ARCHITECTURE,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _random_state_dict(config):  # -> dict[str, torch.Tensor]
    """Weights initialised by transformers from a fixed seed: the same bytes every build."""
    import torch
    from transformers import LlamaForCausalLM

    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.state_dict()
