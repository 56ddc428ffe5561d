"""Typed engine settings map onto vLLM's engine arguments (CPU and GPU paths)."""

from pathlib import Path

from serving.config.settings import EngineSettings
from serving.engine.vllm_engine import engine_args, engine_environment


def test_cpu_settings_give_kv_cache_bytes_and_cpu_env(tmp_path: Path) -> None:
    settings = EngineSettings(max_num_seqs=8, max_num_batched_tokens=1024, max_model_len=512, kv_cache_gib=0.5)
    args = engine_args(tmp_path, "x", settings)
    assert args.model == str(tmp_path) and args.served_model_name == "x"
    assert args.max_num_seqs == 8 and args.max_num_batched_tokens == 1024 and args.max_model_len == 512
    assert args.kv_cache_memory_bytes == 512 * 1024**2
    assert args.enforce_eager is True and args.dtype == "float32"  # the CPU default
    assert args.disable_log_stats is False  # engine metrics need stats
    env = engine_environment(settings)
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"


def test_gpu_settings_use_memory_utilisation_not_cpu_knobs(tmp_path: Path) -> None:
    settings = EngineSettings(device="cuda", gpu_memory_utilization=0.85, tensor_parallel_size=2, enforce_eager=False, dtype="float16")
    args = engine_args(tmp_path, "big", settings)
    assert args.gpu_memory_utilization == 0.85
    assert args.kv_cache_memory_bytes is None
    assert args.tensor_parallel_size == 2 and args.enforce_eager is False and args.dtype == "float16"
    assert "VLLM_CPU_KVCACHE_SPACE" not in engine_environment(settings)


def test_default_precision_is_float32_on_cpu_and_bfloat16_on_cuda(tmp_path: Path) -> None:
    assert engine_args(tmp_path, "x", EngineSettings()).dtype == "float32"
    assert engine_args(tmp_path, "x", EngineSettings(device="cuda")).dtype == "bfloat16"
    # An explicit dtype always wins, on either device.
    assert engine_args(tmp_path, "x", EngineSettings(dtype="bfloat16")).dtype == "bfloat16"
    assert engine_args(tmp_path, "x", EngineSettings(device="cuda", dtype="float32")).dtype == "float32"


def test_float16_is_refused_on_cpu_with_the_fix_named() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="float16 does not run on vLLM's CPU backend"):
        EngineSettings(dtype="float16")
    assert EngineSettings(device="cuda", dtype="float16").resolved_dtype == "float16"
