"""Pod hardening beyond non-root: API tokens, read-only root filesystems, egress.

* No pod mounts a service-account token. The one process that needs the Kubernetes API,
  KubeRay's autoscaler sidecar in the head pod (``enableInTreeAutoscaling``), gets a
  projected token through ``autoscalerOptions.volumeMounts`` only, for a dedicated
  ServiceAccount whose Role grants what the autoscaler uses, nothing more.
* Every container has a read-only root filesystem; what Ray, vLLM and PostgreSQL write
  goes to emptyDirs (or the database's volume).
* Egress: Ray pods reach each other (any port), DNS and PostgreSQL; the head also the
  API server (the autoscaler); nothing else.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml

from serving.tools.render_serve_config import REPO
from tests.k8s.conftest import TARGETS
from tests.k8s.manifests import (
    Peer,
    allowed_ports,
    containers,
    mounted_at,
    of_kind,
    one,
    ray_pods,
    statefulset_pods,
    volume,
    workload_pods,
)
from tests.k8s.test_k8s_docker import RECIPES, instructions

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# What Ray's autoscaler calls (ray/autoscaler/_private/kuberay/node_provider.py): it lists
# and watches the cluster's pods, patches them, reads and patches its RayCluster. KubeRay
# 1.7 grants the same per RayCluster (common/rbac.go), plus pods/resize it does not use here.
AUTOSCALER_RULES = {
    ("", "pods"): {"get", "list", "watch", "patch"},
    ("ray.io", "rayclusters"): {"get", "patch"},
}
DNS = Peer("10.244.0.3", {"k8s-app": "kube-dns"}, "kube-system")
OUTSIDE = Peer("203.0.113.7")  # e.g. a model hub or an object store
API_SERVER = Peer("172.18.0.2")  # the control plane: outside the pod network


def rayservice(docs):
    return one(docs, "RayService")


def autoscaler_options(docs):
    return rayservice(docs)["spec"]["rayClusterConfig"]["autoscalerOptions"]


def image_home(variant: str) -> str:
    """HOME of the image's runtime user (the last ENV HOME of the recipe)."""
    homes = [rest.split("=", 1)[1] for keyword, rest in instructions(RECIPES[variant])
             if keyword == "ENV" and rest.startswith("HOME=")]  # fmt: skip
    assert homes, f"{RECIPES[variant].name} must set HOME (the pods mount its .cache)"
    return homes[-1]


# --- service-account tokens -------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_no_pod_mounts_a_service_account_token(rendered, target):
    pods = workload_pods(rendered[target])
    assert {p.node_type for p in pods} == {"head", "worker", "statefulset"}
    for pod in pods:
        assert pod.spec.get("automountServiceAccountToken") is False, pod.group
        for container in containers(pod.spec):
            assert mounted_at(container, TOKEN_DIR) is None, f"{pod.group}/{container['name']}"


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_autoscaler_gets_an_api_token(rendered, target):
    docs = rendered[target]
    cluster = rayservice(docs)["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True  # else no pod would need the API at all
    head = next(p for p in ray_pods(docs) if p.node_type == "head")
    account = one(docs, "ServiceAccount", head.spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    (mount,) = [m for m in autoscaler_options(docs)["volumeMounts"] if m["mountPath"] == TOKEN_DIR]
    assert mount["readOnly"] is True
    sources = volume(head, mount["name"])["projected"]["sources"]
    token = next(s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s)
    assert token["path"] == "token" and token["expirationSeconds"] <= 3607
    assert any(s.get("configMap", {}).get("name") == "kube-root-ca.crt" for s in sources), "ca.crt"
    for pod in workload_pods(docs):
        if pod.node_type != "head":
            assert not pod.spec.get("serviceAccountName"), f"{pod.group}: the namespace's default account"
            assert not [v for v in pod.spec.get("volumes", []) if "projected" in v], pod.group


@pytest.mark.parametrize("target", TARGETS)
def test_the_autoscaler_role_is_minimal(rendered, target):
    docs = rendered[target]
    head = next(p for p in ray_pods(docs) if p.node_type == "head")
    namespace = one(docs, "Namespace")["metadata"]["name"]
    (binding,) = of_kind(docs, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": head.spec["serviceAccountName"], "namespace": namespace}
    ]
    assert binding["roleRef"]["kind"] == "Role"
    role = one(docs, "Role", binding["roleRef"]["name"])
    granted = {(group, resource): set(rule["verbs"])
               for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}  # fmt: skip
    assert granted == AUTOSCALER_RULES
    assert of_kind(docs, "ClusterRole") == [] and of_kind(docs, "ClusterRoleBinding") == []


# --- read-only root filesystems ------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_root_filesystem_is_read_only(rendered, target):
    docs = rendered[target]
    for pod in workload_pods(docs):
        for container in containers(pod.spec):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, f"{pod.group}/{container['name']}"
    assert autoscaler_options(docs)["securityContext"]["readOnlyRootFilesystem"] is True


def _writable(pod, container, path: str) -> bool:
    """Whether ``path`` lies on a writable emptyDir or claim mounted in ``container``."""
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: len(m["mountPath"]), reverse=True)
    for mount in mounts:
        if PurePosixPath(path).is_relative_to(mount["mountPath"]):
            if mount.get("readOnly"):
                return False
            source = volume(pod, mount["name"])
            claim = source.get("persistentVolumeClaim")
            return "emptyDir" in source or (claim is not None and not claim.get("readOnly"))
    return False


@pytest.mark.parametrize(("target", "variant"), [("base", "cpu"), ("cpu-dev", "cpu"), ("gpu-prod", "gpu")])
def test_ray_and_vllm_write_only_to_scratch_volumes(rendered, target, variant):
    docs = rendered[target]
    home = image_home(variant)
    env = one(docs, "ConfigMap")["data"]
    # Ray's temp dir (sessions, logs, sockets), Python's temp files, torch inductor; HOME's
    # cache: vLLM (VLLM_CACHE_ROOT), Hugging Face, torch, FlashInfer, outlines; the
    # cache folders the environment points elsewhere (Triton, Numba).
    paths = ["/tmp", "/tmp/ray", f"{home}/.cache/vllm", f"{home}/.cache/huggingface", f"{home}/.cache/torch"]
    paths += [env[name] for name in ("TRITON_CACHE_DIR", "NUMBA_CACHE_DIR")]
    for pod in ray_pods(docs):
        for path in paths:
            assert _writable(pod, pod.ray_container, path), f"{pod.group}: {path} not writable"
        # KubeRay shares Ray's log folder with the autoscaler through a volume named ray-logs.
        assert mounted_at(pod.ray_container, "/tmp/ray")["name"] == "ray-logs"
    options = autoscaler_options(docs)
    assert any(m["mountPath"] == "/tmp" for m in options["volumeMounts"]), "the autoscaler's temp files"
    model_cache = yaml.safe_load((REPO / "k8s/base/serve-settings.yaml").read_text())["model"]["cache_dir"]
    for pod in ray_pods(docs):  # the default model prepared into the image is read, never written
        assert not _writable(pod, pod.ray_container, model_cache)


@pytest.mark.parametrize("target", TARGETS)
def test_postgres_writes_only_to_its_volume_and_scratch(rendered, target):
    (pod,) = statefulset_pods(rendered[target])
    container = pod.spec["containers"][0]
    pgdata = next(e["value"] for e in container["env"] if e["name"] == "PGDATA")
    for path in (pgdata, "/var/run/postgresql", "/tmp"):
        assert _writable(pod, container, path), path


# --- egress -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_egress_reaches_ray_dns_and_postgres_only(rendered, target):
    docs = rendered[target]
    namespace = one(docs, "Namespace")["metadata"]["name"]
    pods = ray_pods(docs)
    (postgres,) = statefulset_pods(docs)
    for pod in pods:
        # The autoscaler sidecar (head) talks to the API server: 443, or 6443 after kube-proxy's
        # DNAT, at an address that is site-specific: any address (ipBlock; taken here to
        # match pod addresses too, as some CNIs do).
        api = {"TCP/443", "TCP/6443"} if pod.node_type == "head" else set()
        for other in pods:  # head <-> workers, workers <-> workers, both clusters during upgrades
            assert "*" in allowed_ports(docs, pod, "Egress", Peer("10.244.3.4", other.labels, namespace))
        assert allowed_ports(docs, pod, "Egress", DNS) == {"UDP/53", "TCP/53"} | api
        assert allowed_ports(docs, pod, "Egress", Peer("10.244.5.6", postgres.labels, namespace)) == {"TCP/5432"} | api
        assert allowed_ports(docs, pod, "Egress", API_SERVER) == api
        assert allowed_ports(docs, pod, "Egress", OUTSIDE) == api
        for stranger in (
            Peer("10.244.1.8", {"app": "debug-shell"}, namespace),
            Peer("10.244.1.9", {"k8s-app": "kube-dns"}, "elsewhere"),
            Peer("10.244.1.10", {"app.kubernetes.io/name": "prometheus"}, "monitoring"),
        ):
            assert allowed_ports(docs, pod, "Egress", stranger) == api, stranger


def test_readme_says_how_to_open_egress():
    text = (REPO / "k8s" / "README.md").read_text()
    assert "egress" in text.lower() and "ipBlock" in text
    assert "automountServiceAccountToken" in text and "readOnlyRootFilesystem" in text
