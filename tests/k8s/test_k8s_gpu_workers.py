"""GPU worker pods are sized from the settings: one pod holds one model replica and all its GPUs.

The generator derives Ray's ``num-gpus`` and the container's ``nvidia.com/gpu`` from
``model.engine`` (tensor x pipeline parallel size) and ``num-cpus`` from the replica's
placement group; the rendered overlay (real kustomize) is checked, for gpu-prod as shipped
and for a scratch copy of it switched to 2 and 8 GPUs per replica.
"""

from __future__ import annotations

import pytest
import yaml

from serving.ray_serve.placement import placement_bundles, replica_resources
from serving.tools import render_serve_config as gen
from serving.tools.k8s_validate import render
from tests.k8s.manifests import ray_pods, settings_of
from tests.k8s.test_k8s_serve_config import copy_repo

GPU = gen.GPU_RESOURCE
GPU_PROD = "k8s/overlays/gpu-prod"


def with_engine(repo, **engine) -> None:
    """Set gpu-prod's engine settings (merged over the overlay's own) in the scratch repo."""
    path = repo / GPU_PROD / gen.SETTINGS_PATCH
    path.write_text(yaml.safe_dump(gen.deep_merge(yaml.safe_load(path.read_text()), {"model": {"engine": engine}})))


def worker(docs):
    (pod,) = [p for p in ray_pods(docs) if p.node_type == "worker"]
    return pod


def test_shipped_gpu_prod_worker_asks_for_the_gpu_of_its_replica(rendered):
    settings = settings_of(rendered["gpu-prod"])
    pod = worker(rendered["gpu-prod"])
    resources = pod.ray_container["resources"]
    assert resources["requests"][GPU] == resources["limits"][GPU] == pod.ray_start_params["num-gpus"] == "1"
    assert placement_bundles(settings.model) is None  # one GPU: the replica itself holds it


@pytest.mark.parametrize(("tp", "pp"), [(2, 1), (8, 1), (4, 2)])
def test_a_multi_gpu_replica_gets_a_pod_with_all_its_gpus(tmp_path, tp, pp):
    repo = copy_repo(tmp_path)
    with_engine(repo, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    gen.write_all(repo)
    docs = render(repo / GPU_PROD)
    settings = settings_of(docs)
    world = tp * pp
    assert settings.model.engine.world_size == world and settings.model.replica_gpus == world
    assert len(placement_bundles(settings.model)) == world
    pod = worker(docs)
    resources = pod.ray_container["resources"]
    assert resources["requests"][GPU] == resources["limits"][GPU] == pod.ray_start_params["num-gpus"] == str(world)
    # The replica actor's CPUs + one worker_num_cpus per GPU bundle: exactly one replica fits.
    replica = replica_resources(settings.model)
    deployment = settings.model.deployment
    assert replica.cpus == deployment.num_cpus + world * deployment.worker_num_cpus
    assert float(pod.ray_start_params["num-cpus"]) == replica.cpus
    # The head still gets none.
    head = next(p for p in ray_pods(docs) if p.node_type == "head")
    assert head.ray_start_params["num-gpus"] == "0" and GPU not in yaml.safe_dump(head.spec)


def test_a_replica_that_may_span_pods_is_refused(tmp_path):
    repo = copy_repo(tmp_path)
    with_engine(repo, tensor_parallel_size=2)
    path = repo / GPU_PROD / gen.SETTINGS_PATCH
    settings = yaml.safe_load(path.read_text())
    settings["model"]["deployment"]["placement_strategy"] = "PACK"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(gen.RenderError, match="must be STRICT_PACK"):
        gen.render_all(repo)


def test_cpu_targets_get_no_gpu_request():
    assert gen._gpu_request_ops(0) == []
