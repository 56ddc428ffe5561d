"""The tiny random model: same tokenizer and template as the default, reproducible weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.model import tiny
from serving.model.folder import MARKER_NAME, read_marker
from serving.engine.generation_defaults import read_generation_defaults


def test_config_agrees_with_the_tokenizer(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    config = json.loads((tiny_dir / "config.json").read_text())
    generation = json.loads((tiny_dir / "generation_config.json").read_text())
    assert config["vocab_size"] == len(tokenizer) == 49152
    assert config["eos_token_id"] == generation["eos_token_id"] == tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id) == "<|im_end|>"
    assert config["max_position_embeddings"] == 2048
    assert config["head_dim"] >= 32  # smallest head size vLLM's CPU attention accepts


def test_chat_template_renders_chatml(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_tokenizer_is_the_default_models(tiny_dir: Path, prepared_dir: Path) -> None:
    """Token counts (usage) seen with the tiny model are those of the real model."""
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        tiny_file = json.loads((tiny_dir / name).read_text())
        default_file = json.loads((prepared_dir / name).read_text())
        if name == "tokenizer_config.json":  # only the context window differs
            assert tiny_file.pop("model_max_length") == 2048
            default_file.pop("model_max_length")
        if name == "generation_config.json":  # only the default model has sampling defaults
            for key in ("do_sample", "temperature", "top_p"):
                default_file.pop(key)
        assert tiny_file == default_file, name


def test_tiny_model_keeps_openai_sampling_defaults(tiny_dir: Path) -> None:
    """Integration tests assume temperature/top_p 1.0 when a request leaves them out."""
    assert read_generation_defaults(tiny_dir) == {}


def test_weights_are_reproducible_from_config_and_seed(tiny_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tiny_dir)
    torch.manual_seed(tiny.SEED)
    expected = LlamaForCausalLM(config).state_dict()
    saved = load_file(str(tiny_dir / "model.safetensors"))
    assert set(saved) == set(expected) - {"lm_head.weight"}
    for name, tensor in saved.items():
        assert tensor.dtype == torch.bfloat16
        assert torch.equal(tensor, expected[name].to(torch.bfloat16)), name
    # Random, not degenerate: greedy decoding needs weights far from zero to vary.
    assert saved["model.embed_tokens.weight"].float().std() > 0.3


def test_reused_without_rebuilding(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = (tiny_dir / MARKER_NAME).read_bytes()

    def must_not_build(gguf: Path, dest: Path) -> None:
        raise AssertionError("rebuilt a complete tiny model")

    monkeypatch.setattr(tiny, "_build", must_not_build)
    assert tiny.make_tiny_model(tiny_dir) == tiny_dir
    assert (tiny_dir / MARKER_NAME).read_bytes() == marker
    assert read_marker(tiny_dir)["fingerprint"]["architecture"] == tiny.TINY_ARCHITECTURE


def test_building_leaves_the_global_random_state_alone(tmp_path: Path) -> None:
    import torch

    config = tiny._tiny_config(_FakeTokenizer())
    before = torch.random.get_rng_state()
    tiny._random_state_dict(config)
    assert torch.equal(torch.random.get_rng_state(), before)


class _FakeTokenizer:
    """Just what ``_tiny_config`` reads: a vocabulary size and special token ids."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 2

    def __len__(self) -> int:
        return 1000
