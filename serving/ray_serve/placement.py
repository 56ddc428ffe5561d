"""Where a model replica runs: its Ray resources and, for a multi-GPU engine, its placement group.

One engine on one device (CPU, or one CUDA GPU): the replica actor reserves ``num_cpus``
and the replica's GPU in ``ray_actor_options``; vLLM runs inside it.

One engine on several GPUs (``tensor_parallel_size x pipeline_parallel_size > 1`` on CUDA):
vLLM's Ray executor (``distributed_executor_backend="ray"``) starts one worker actor per
GPU inside the replica's placement group. Built as Ray Serve LLM builds it
(``LLMServer.get_deployment_options``, ``_merge_replica_actor_and_child_actor_bundles``):
one bundle per worker, ``{"GPU": 1, "CPU": worker_num_cpus}``, and the replica actor shares
the first bundle (its CPUs added to it). vLLM requires it (``ray_utils``): at most one GPU
per bundle, as many GPU bundles as workers, and one of them on the driver's (the
replica's) node. The replica actor itself asks for no GPU; the workers take them.

Nothing here imports Ray: the Kubernetes generator sizes worker pods from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.config.settings import ModelSettings


@dataclass(frozen=True)
class ReplicaResources:
    """What one model replica reserves in Ray in total (actor + placement group)."""

    cpus: float
    gpus: float


def placement_bundles(model: ModelSettings) -> list[dict[str, float]] | None:
    """The replica's placement group bundles, or None when the engine runs in the replica alone."""
    engine, deployment = model.engine, model.deployment
    if engine.distributed_executor_backend != "ray":
        return None
    worker = {"GPU": 1.0, "CPU": deployment.worker_num_cpus}
    first = {"GPU": 1.0, "CPU": deployment.worker_num_cpus + deployment.num_cpus}
    return [first] + [dict(worker) for _ in range(engine.world_size - 1)]


def replica_placement_options(model: ModelSettings) -> dict[str, Any]:
    """Serve deployment options placing one model replica (``ray_actor_options`` and,
    for a multi-GPU engine, ``placement_group_bundles`` / ``placement_group_strategy``)."""
    bundles = placement_bundles(model)
    if bundles is None:
        return {"ray_actor_options": {"num_cpus": model.deployment.num_cpus, "num_gpus": model.replica_gpus}}
    return {
        "ray_actor_options": {"num_cpus": model.deployment.num_cpus, "num_gpus": 0},
        "placement_group_bundles": bundles,
        "placement_group_strategy": model.deployment.placement_strategy,
    }


def replica_resources(model: ModelSettings) -> ReplicaResources:
    """Total CPUs and GPUs of one replica: the worker pod that holds exactly one is this big."""
    bundles = placement_bundles(model)
    if bundles is None:
        return ReplicaResources(cpus=model.deployment.num_cpus, gpus=model.replica_gpus)
    return ReplicaResources(cpus=sum(b["CPU"] for b in bundles), gpus=sum(b["GPU"] for b in bundles))
