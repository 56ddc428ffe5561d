"""Helpers to read rendered manifests: find objects, the pods KubeRay will create, settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from serving.config.settings import Settings
from serving.tools.render_serve_config import validate_args


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single document of ``kind`` (and ``name``)."""
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Every document of ``kind``."""
    return [d for d in docs if d["kind"] == kind]


def serve_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Serve config embedded in the RayService."""
    return yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])


def settings_of(docs: list[dict[str, Any]]) -> Settings:
    """The validated settings tree the RayService's application runs with."""
    return validate_args(serve_config(docs)["applications"][0]["args"])


@dataclass(frozen=True)
class Pod:
    """A pod KubeRay will create from a group's template, with the labels KubeRay adds."""

    node_type: str  # head | worker
    group: str
    labels: dict[str, str]
    spec: dict[str, Any]
    ray_start_params: dict[str, str]

    @property
    def ray_container(self) -> dict[str, Any]:
        """KubeRay: the Ray container is the first container."""
        return self.spec["containers"][0]


def kuberay_labels(rayservice: dict[str, Any], node_type: str, group: str, template: dict[str, Any]) -> dict[str, str]:
    """Pod labels as KubeRay's labelPod builds them (ray-operator/controllers/ray/common/pod.go).

    The template's labels are merged in, except the three KubeRay owns; ray.io/serve is
    "true" on workers and managed by the operator on the head ("false" with
    excludeHeadPodFromServeSvc).
    """
    cluster = f"{rayservice['metadata']['name']}-abcde"  # the RayCluster's generated name
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": f"{cluster}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    owned = {"ray.io/node-type", "ray.io/group", "ray.io/cluster"}
    for key, value in (template.get("metadata", {}).get("labels") or {}).items():
        if key not in owned:
            labels[key] = value
    labels["ray.io/serve"] = "true" if node_type == "worker" else "false"
    return labels


def ray_pods(docs: list[dict[str, Any]]) -> list[Pod]:
    """The head pod and one pod of each worker group of the RayService."""
    rayservice = one(docs, "RayService")
    cluster = rayservice["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    pods = [
        Pod("head", "headgroup", kuberay_labels(rayservice, "head", "headgroup", head["template"]),
            head["template"]["spec"], head.get("rayStartParams", {}))
    ]  # fmt: skip
    for group in cluster.get("workerGroupSpecs", []):
        labels = kuberay_labels(rayservice, "worker", group["groupName"], group["template"])
        params = group.get("rayStartParams", {})
        pods.append(Pod("worker", group["groupName"], labels, group["template"]["spec"], params))
    return pods


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Init and app containers of a pod spec."""
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels/matchExpressions or a plain map) matches."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(k) == v for k, v in selector.items())  # Service-style selector
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def container_ports(pod: Pod) -> dict[str, int]:
    """Named ports of the pod's Ray container."""
    return {p["name"]: p["containerPort"] for p in pod.ray_container.get("ports", []) if "name" in p}


def arg_after(command: list[str], flag: str) -> str:
    """The value following ``flag`` in a command list."""
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]
