"""The folder's sampling defaults: read as vLLM reads them, under the settings' overrides."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from serving.config.settings import GenerationDefaults
from serving.engine.protocol import SamplingDefaults
from serving.model.folder import ModelFolderError
from serving.engine.generation_defaults import read_generation_defaults, sampling_defaults

QWEN_LIKE = {
    "bos_token_id": 1,
    "eos_token_id": [2, 3],
    "do_sample": True,
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
    "min_p": None,
    "repetition_penalty": 1.05,
    "max_new_tokens": 300,
}


def folder_with(tmp_path: Path, config: object) -> Path:
    (tmp_path / "generation_config.json").write_text(json.dumps(config))
    return tmp_path


def test_keys_are_mapped_like_vllm_and_nulls_and_token_ids_ignored(tmp_path: Path) -> None:
    defaults = read_generation_defaults(folder_with(tmp_path, QWEN_LIKE))
    assert defaults == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05, "max_tokens": 300}
    assert isinstance(defaults["top_k"], int) and isinstance(defaults["max_tokens"], int)


def test_same_result_as_vllms_own_reader(tmp_path: Path) -> None:
    """vLLM's get_diff_sampling_param on the same file (its code, our reader's answer)."""
    from vllm.config.model import ModelConfig
    from vllm.transformers_utils.config import try_get_generation_config

    folder = folder_with(tmp_path, {**QWEN_LIKE, "presence_penalty": 0.5})
    read = try_get_generation_config(str(folder), trust_remote_code=False).to_diff_dict()
    model_config = SimpleNamespace(
        generation_config="auto", try_get_generation_config=lambda: dict(read), override_generation_config={}
    )
    assert read_generation_defaults(folder) == ModelConfig.get_diff_sampling_param(model_config)


def test_no_file_or_no_sampling_keys_means_no_defaults(tmp_path: Path) -> None:
    assert read_generation_defaults(tmp_path) == {}
    assert read_generation_defaults(folder_with(tmp_path, {"eos_token_id": 2})) == {}


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"temperature": "hot"}', "temperature must be a number"),
        ('{"top_k": true}', "top_k must be a number"),
        ('{"max_new_tokens": 10.5}', "max_new_tokens must be an integer"),
    ],
)
def test_a_broken_file_is_an_error_naming_it(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "generation_config.json").write_text(content)
    with pytest.raises(ModelFolderError, match=message) as info:
        read_generation_defaults(tmp_path)
    assert "generation_config.json" in info.value.message


def test_settings_override_the_folder_key_by_key(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, QWEN_LIKE)
    merged = sampling_defaults(folder, GenerationDefaults(temperature=0.0, max_tokens=64))
    assert merged == SamplingDefaults(
        temperature=0.0, top_p=0.8, top_k=20, repetition_penalty=1.05, max_tokens=64
    )


def test_chat_cap_falls_back_to_default_max_tokens_only_when_nobody_sets_one(tmp_path: Path) -> None:
    assert sampling_defaults(tmp_path, GenerationDefaults()) == SamplingDefaults(max_tokens=512)
    assert sampling_defaults(tmp_path, GenerationDefaults(default_max_tokens=None)) == SamplingDefaults()
    folder = folder_with(tmp_path, {"max_new_tokens": 300})
    assert sampling_defaults(folder, GenerationDefaults(default_max_tokens=100)).max_tokens == 300
