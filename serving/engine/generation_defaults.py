"""The served folder's sampling defaults, read from generation_config.json as vLLM reads them.

vLLM's OpenAI server (``ModelConfig.get_diff_sampling_param`` with ``--generation-config
auto``) takes these keys from the folder's generation config when they are set (not
null), and renames ``max_new_tokens`` to ``max_tokens``. Its ``AsyncLLM`` does not apply
them, so we do, with plain JSON (no transformers import). Unlike vLLM, a folder without
generation_config.json gets no defaults (vLLM then tries legacy keys in config.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serving.config.settings import GenerationDefaults
from serving.engine.protocol import SamplingDefaults
from serving.model.folder import ModelFolderError

GENERATION_CONFIG_NAME = "generation_config.json"
# generation_config.json key -> sampling parameter, as in vllm/config/model.py.
GENERATION_CONFIG_KEYS = {
    "repetition_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "max_new_tokens": "max_tokens",
}
_INTEGER_PARAMETERS = ("top_k", "max_tokens")


def read_generation_defaults(folder: Path) -> dict[str, float | int]:
    """Sampling parameters the folder's generation_config.json sets, by vLLM's names.

    An absent file gives ``{}``; a file that is not a JSON object, or a parameter that is
    not a number, is a ``ModelFolderError`` naming the file and key.
    """
    path = Path(folder) / GENERATION_CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path}: expected a JSON object")
    return {
        name: _number(path, key, data[key], integer=name in _INTEGER_PARAMETERS)
        for key, name in GENERATION_CONFIG_KEYS.items()
        if data.get(key) is not None
    }


def sampling_defaults(folder: Path, overrides: GenerationDefaults) -> SamplingDefaults:
    """The model's effective defaults: the folder's values under the settings' overrides.

    ``max_tokens`` (chat completions only) falls back to ``overrides.default_max_tokens``.
    """
    merged: dict[str, Any] = read_generation_defaults(folder)
    merged.update(overrides.model_dump(include={"temperature", "top_p", "max_tokens"}, exclude_none=True))
    merged.setdefault("max_tokens", overrides.default_max_tokens)
    return SamplingDefaults(**merged)


def _number(path: Path, key: str, value: Any, *, integer: bool) -> float | int:
    """``value`` as the number a sampling parameter takes; else a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFolderError(f"{path}: {key} must be a number, got {value!r}")
    if integer:
        if value != int(value):
            raise ModelFolderError(f"{path}: {key} must be an integer, got {value!r}")
        return int(value)
    return float(value)
