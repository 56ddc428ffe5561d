"""The shared Hugging Face file writers: generation_config.json with or without sampling defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.engine.generation_defaults import read_generation_defaults
from serving.model.hf_files import save_generation_config
from serving.model.prepare import DEFAULT_MODEL_SAMPLING


class _TokenizerStub:
    """Just what ``save_generation_config`` reads: the special token ids."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 2


def test_sampling_defaults_are_written_with_do_sample(tmp_path: Path) -> None:
    save_generation_config(_TokenizerStub(), tmp_path, sampling=DEFAULT_MODEL_SAMPLING)
    written = json.loads((tmp_path / "generation_config.json").read_text())
    assert (written["temperature"], written["top_p"], written["do_sample"]) == (0.2, 0.9, True)
    assert (written["bos_token_id"], written["eos_token_id"], written["pad_token_id"]) == (1, 2, 2)
    assert read_generation_defaults(tmp_path) == {"temperature": 0.2, "top_p": 0.9}


def test_without_sampling_the_file_sets_no_defaults(tmp_path: Path) -> None:
    save_generation_config(_TokenizerStub(), tmp_path)
    written = json.loads((tmp_path / "generation_config.json").read_text())
    assert not {"temperature", "top_p", "do_sample"} & set(written)
    assert read_generation_defaults(tmp_path) == {}


def test_missing_special_tokens_are_refused(tmp_path: Path) -> None:
    stub = _TokenizerStub()
    stub.pad_token_id = None
    with pytest.raises(ValueError, match="pad_token_id"):
        save_generation_config(stub, tmp_path)
