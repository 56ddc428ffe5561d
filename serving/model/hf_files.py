"""Writers of the files a Hugging Face model folder holds, shared by every builder here.

Both the converted default model and the tiny test model get their tokenizer from the
packaged GGUF through the same code, so they tokenize and template chats identically.
Everything runs offline: nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

if TYPE_CHECKING:  # transformers/torch are imported lazily: importing this module is cheap
    import torch
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

WEIGHTS_NAME = "model.safetensors"
# Noise that transformers' save_pretrained puts into tokenizer_config.json.
_TOKENIZER_CONFIG_DROP = ("is_local", "local_files_only", "name_or_path")
# Left over from loading a GGUF file; the saved weights are plain bf16, not quantised.
_MODEL_CONFIG_DROP = ("_name_or_path", "_model_name_or_path", "quantization_config")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Offline, no progress bars, no info chatter: our own stage lines are the display."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    saved_level = hf_logging.get_verbosity()
    bars_were_on = hf_logging.is_progress_bar_enabled()
    # The GGUF loader draws a bare tqdm bar that no transformers switch turns off.
    saved_tqdm = getattr(gguf_utils, "tqdm", None)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if saved_tqdm is not None:
        gguf_utils.tqdm = _no_bar
    try:
        yield
    finally:
        hf_logging.set_verbosity(saved_level)
        if bars_were_on:
            hf_logging.enable_progress_bar()
        if saved_tqdm is not None:
            gguf_utils.tqdm = saved_tqdm


def _no_bar(iterable: Iterable[Any], *args: Any, **kwargs: Any) -> Iterable[Any]:
    """A stand-in for tqdm that draws nothing."""
    return iterable


def load_gguf_tokenizer(gguf: Path) -> "PreTrainedTokenizerBase":
    """The tokenizer (with its ChatML chat template) stored inside a GGUF file."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)


def save_tokenizer(tokenizer: "PreTrainedTokenizerBase", dest: Path, *, max_length: int) -> None:
    """Write tokenizer.json + tokenizer_config.json, the chat template inside the latter.

    The template lives in tokenizer_config.json (read by every transformers version) and
    nowhere else, so there is one copy of it.
    """
    if not tokenizer.chat_template:
        raise ValueError("the tokenizer has no chat template")
    tokenizer.save_pretrained(dest)
    (dest / "chat_template.jinja").unlink(missing_ok=True)
    config_file = dest / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    for key in _TOKENIZER_CONFIG_DROP:
        config.pop(key, None)
    config.update(
        chat_template=tokenizer.chat_template,
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
        # transformers 5 writes its own class name (TokenizersBackend); this alias of it
        # is also known to transformers 4, which loads tokenizer.json with it.
        tokenizer_class="PreTrainedTokenizerFast",
    )
    _write_json(config_file, config)


def save_model_config(config: "PretrainedConfig", dest: Path) -> None:
    """Write config.json for bf16 weights, with ``rope_theta`` also at the top level.

    transformers 5 nests ``rope_theta`` in ``rope_parameters``; readers built for
    earlier versions look for it at the top level, so it is written in both places.
    """
    data: dict[str, Any] = config.to_diff_dict()
    for key in _MODEL_CONFIG_DROP:
        data.pop(key, None)
    data["architectures"] = ["LlamaForCausalLM"]
    data["dtype"] = data["torch_dtype"] = "bfloat16"
    rope = data.get("rope_parameters") or {}
    if "rope_theta" in rope:
        data["rope_theta"] = rope["rope_theta"]
    _write_json(dest / "config.json", data)


def save_generation_config(
    tokenizer: "PreTrainedTokenizerBase", dest: Path, *, sampling: Mapping[str, float] | None = None
) -> None:
    """Write generation_config.json whose token ids are the tokenizer's own.

    ``eos_token_id`` is ``<|im_end|>``: generation stops at the end of the assistant turn.
    ``sampling`` (e.g. temperature, top_p) become the model's defaults for requests that
    leave them out (see ``serving.engine.generation_defaults``); ``do_sample`` is set with
    them, as transformers refuses sampling values without it. None: no sampling defaults.
    """
    from transformers import GenerationConfig

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    missing = [name for name, value in ids.items() if value is None]
    if missing:
        raise ValueError(f"the tokenizer lacks special tokens: {missing}")
    extra: dict[str, Any] = {"do_sample": True, **sampling} if sampling else {}
    GenerationConfig(**ids, **extra).save_pretrained(dest)


def save_bf16_weights(state_dict: Mapping[str, "torch.Tensor"], dest: Path, *, tied: bool) -> None:
    """Write the weights as one bf16 safetensors file (the tied output head is left out)."""
    import torch
    from safetensors.torch import save_file

    tensors = {
        name: tensor.detach().to(torch.bfloat16).contiguous()
        for name, tensor in state_dict.items()
        if not (tied and name == "lm_head.weight")
    }
    save_file(tensors, str(dest / WEIGHTS_NAME), metadata={"format": "pt"})


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
