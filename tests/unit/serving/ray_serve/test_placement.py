"""A model replica's Ray placement from settings: 1, 2 and 8 GPUs (TP=8; TP=4 x PP=2).

The options go through the production builder (``build_app_from_settings``) so Ray
Serve's own validation runs on them (the replica actor must fit the first bundle).
The layout is Ray Serve LLM's (``LLMServer.get_deployment_options``): one bundle per vLLM
worker GPU, the replica actor in the first; vLLM's Ray executor wants one GPU per bundle.
"""

from __future__ import annotations

from typing import Any

import pytest

from serving.config.settings import load_settings
from serving.ray_serve.app import build_app_from_settings
from serving.ray_serve.placement import placement_bundles, replica_placement_options, replica_resources


def model_settings(engine: dict[str, Any], deployment: dict[str, Any] | None = None):
    return load_settings({"model": {"engine": engine, "deployment": {"num_cpus": 2, **(deployment or {})}}}).model


def built(engine: dict[str, Any], deployment: dict[str, Any] | None = None):
    """The model deployment as Serve holds it (its replica config)."""
    settings = load_settings({"model": {"engine": engine, "deployment": {"num_cpus": 2, **(deployment or {})}}})
    return build_app_from_settings(settings)._bound_deployment._replica_config


def test_cpu_replica_reserves_cpus_only_and_no_group() -> None:
    config = built({})
    assert config.ray_actor_options["num_cpus"] == 2 and config.ray_actor_options["num_gpus"] == 0
    assert config.placement_group_bundles is None and config.placement_group_strategy is None


def test_one_gpu_the_replica_holds_it_itself() -> None:
    config = built({"device": "cuda"})
    assert config.ray_actor_options["num_gpus"] == 1  # vLLM runs in the replica (its engine core process)
    assert config.placement_group_bundles is None
    assert replica_resources(model_settings({"device": "cuda"})).gpus == 1


def test_two_gpus_one_bundle_per_worker_replica_in_the_first() -> None:
    config = built({"device": "cuda", "tensor_parallel_size": 2})
    assert config.ray_actor_options["num_cpus"] == 2 and config.ray_actor_options["num_gpus"] == 0
    assert config.placement_group_bundles == [{"GPU": 1.0, "CPU": 3.0}, {"GPU": 1.0, "CPU": 1.0}]
    assert config.placement_group_strategy == "STRICT_PACK"


@pytest.mark.parametrize("engine", [{"tensor_parallel_size": 8}, {"tensor_parallel_size": 4, "pipeline_parallel_size": 2}])
def test_eight_gpus_tp8_or_tp4_pp2(engine: dict[str, Any]) -> None:
    config = built({"device": "cuda", **engine})
    bundles = config.placement_group_bundles
    assert len(bundles) == 8 and all(b["GPU"] == 1 for b in bundles)  # vLLM: at most 1 GPU per bundle
    assert bundles[0]["CPU"] == 2 + 1 and all(b["CPU"] == 1 for b in bundles[1:])
    assert config.ray_actor_options["num_gpus"] == 0 and config.placement_group_strategy == "STRICT_PACK"
    resources = replica_resources(model_settings({"device": "cuda", **engine}))
    assert (resources.cpus, resources.gpus) == (2 + 8, 8)


@pytest.mark.parametrize("strategy", ["PACK", "SPREAD"])
def test_strategy_and_cpus_per_worker_are_settings(strategy: str) -> None:
    config = built({"device": "cuda", "tensor_parallel_size": 2}, {"placement_strategy": strategy, "worker_num_cpus": 4})
    assert config.placement_group_strategy == strategy
    assert config.placement_group_bundles == [{"GPU": 1.0, "CPU": 6.0}, {"GPU": 1.0, "CPU": 4.0}]


def test_an_unknown_strategy_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="placement_strategy"):
        model_settings({"device": "cuda"}, {"placement_strategy": "STRICT_SPREAD"})


def test_options_and_engine_backend_agree() -> None:
    """A group exactly when vLLM's Ray executor is used (it looks the group up)."""
    for engine in ({}, {"device": "cuda"}, {"device": "cuda", "pipeline_parallel_size": 2}, {"tensor_parallel_size": 2}):
        model = model_settings(engine)
        uses_group = "placement_group_bundles" in replica_placement_options(model)
        assert uses_group == (model.engine.distributed_executor_backend == "ray") == (placement_bundles(model) is not None)
