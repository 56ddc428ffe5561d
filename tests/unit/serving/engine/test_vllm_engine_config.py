"""Typed engine settings map onto vLLM's engine arguments (CPU and GPU paths)."""

from pathlib import Path

import pytest

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


# --- device: cuda, pinned: precision, KV cache, CUDA graphs, parallelism ---------------


def test_cuda_defaults_bf16_graphs_on_and_kv_cache_by_memory_fraction(tmp_path: Path) -> None:
    args = engine_args(tmp_path, "x", EngineSettings(device="cuda"))
    assert args.dtype == "bfloat16"  # EngineSettings.resolved_dtype
    assert args.enforce_eager is False  # CUDA graphs (and torch.compile) on by default
    assert args.gpu_memory_utilization == 0.9 and args.kv_cache_memory_bytes is None  # KV cache = what is left
    assert args.tensor_parallel_size == 1 and args.pipeline_parallel_size == 1
    assert args.distributed_executor_backend is None  # one GPU: vLLM's own single-process executor
    assert "VLLM_CPU_KVCACHE_SPACE" not in engine_environment(EngineSettings(device="cuda"))


def test_eager_is_the_cpu_default_and_an_explicit_value_wins(tmp_path: Path) -> None:
    assert engine_args(tmp_path, "x", EngineSettings()).enforce_eager is True
    assert engine_args(tmp_path, "x", EngineSettings(enforce_eager=False)).enforce_eager is False
    assert engine_args(tmp_path, "x", EngineSettings(device="cuda", enforce_eager=True)).enforce_eager is True


@pytest.mark.parametrize(("tp", "pp"), [(2, 1), (8, 1), (4, 2), (1, 2)])
def test_an_engine_over_several_gpus_uses_vllms_ray_executor(tmp_path: Path, tp: int, pp: int) -> None:
    settings = EngineSettings(device="cuda", tensor_parallel_size=tp, pipeline_parallel_size=pp)
    args = engine_args(tmp_path, "big", settings)
    assert (args.tensor_parallel_size, args.pipeline_parallel_size) == (tp, pp)
    assert args.distributed_executor_backend == "ray" and settings.world_size == tp * pp


def test_cpu_parallelism_is_left_to_vllm(tmp_path: Path) -> None:
    """vLLM's CPU backend runs tensor parallelism in processes of its own; no Ray executor."""
    args = engine_args(tmp_path, "x", EngineSettings(tensor_parallel_size=2))
    assert args.tensor_parallel_size == 2 and args.distributed_executor_backend is None


def test_the_ray_executor_is_bound_to_the_replicas_placement_group(tmp_path: Path, monkeypatch) -> None:
    """The engine core process is no Ray worker: the group is handed over in vLLM's config."""
    import ray.util

    from serving.engine import vllm_engine

    group = object()

    class Args:
        distributed_executor_backend = "ray"

        def create_engine_config(self):
            return type("Config", (), {"parallel_config": type("Parallel", (), {"placement_group": None})()})()

    monkeypatch.setattr(ray.util, "get_current_placement_group", lambda: group)
    assert vllm_engine.engine_config(Args()).parallel_config.placement_group is group
    monkeypatch.setattr(ray.util, "get_current_placement_group", lambda: None)
    with pytest.raises(RuntimeError, match="no placement group"):
        vllm_engine.engine_config(Args())
