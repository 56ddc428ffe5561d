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


def statefulset_pods(docs: list[dict[str, Any]]) -> list[Pod]:
    """Pod 0 of each StatefulSet (the feedback database): its template, plus the volumes the
    StatefulSet controller adds for the claim templates (claim ``<template>-<set>-0``)."""
    import copy

    pods = []
    for sts in of_kind(docs, "StatefulSet"):
        name, template = sts["metadata"]["name"], sts["spec"]["template"]
        spec = copy.deepcopy(template["spec"])
        for claim in sts["spec"].get("volumeClaimTemplates", []):
            claim_name = f"{claim['metadata']['name']}-{name}-0"
            spec.setdefault("volumes", []).append(
                {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}
            )
        labels = dict(template.get("metadata", {}).get("labels") or {})
        pods.append(Pod("statefulset", name, labels, spec, {}))
    return pods


def claim_template_pvcs(docs: list[dict[str, Any]]) -> set[str]:
    """Names of the PersistentVolumeClaims the rendered StatefulSets create (pod 0)."""
    return {f"{c['metadata']['name']}-{s['metadata']['name']}-0"
            for s in of_kind(docs, "StatefulSet") for c in s["spec"].get("volumeClaimTemplates", [])}  # fmt: skip


def workload_pods(docs: list[dict[str, Any]]) -> list[Pod]:
    """Every pod the manifests create: the Ray head and workers, and the StatefulSets' pods."""
    return [*ray_pods(docs), *statefulset_pods(docs)]


def volume(pod: Pod, name: str) -> dict[str, Any]:
    """The pod's volume called ``name``."""
    found = [v for v in pod.spec.get("volumes", []) if v["name"] == name]
    assert len(found) == 1, f"{pod.group}: expected one volume {name}, found {len(found)}"
    return found[0]


def mounted_at(container: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The container's volume mount at ``path`` (None: nothing is mounted there)."""
    return next((m for m in container.get("volumeMounts", []) if m["mountPath"] == path), None)


@dataclass(frozen=True)
class Peer:
    """The other end of a connection: a pod (its labels and namespace) or an outside address."""

    ip: str
    pod_labels: dict[str, str] | None = None  # None: not a pod (an address outside the cluster)
    namespace: str | None = None  # the pod's namespace


def _peer_matches(entry: dict[str, Any], peer: Peer, own_namespace: str) -> bool:
    """Whether one ``from``/``to`` entry of a NetworkPolicy rule selects ``peer``."""
    import ipaddress

    if "ipBlock" in entry:
        block = entry["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in ipaddress.ip_network(c) for c in block.get("except", []))
    if peer.pod_labels is None:
        return False  # pod and namespace selectors select pods only
    ns_sel, pod_sel = entry.get("namespaceSelector"), entry.get("podSelector")
    if ns_sel is None:
        return peer.namespace == own_namespace and selects(pod_sel, peer.pod_labels)
    ns_labels = {"kubernetes.io/metadata.name": peer.namespace or ""}
    return selects(ns_sel, ns_labels) and (pod_sel is None or selects(pod_sel, peer.pod_labels))


def allowed_ports(docs: list[dict[str, Any]], pod: Pod, direction: str, peer: Peer) -> set[str]:
    """Ports ("TCP/5432"; "*": every port) the NetworkPolicies selecting ``pod`` allow between
    it and ``peer`` in ``direction`` ("Ingress": peer -> pod, "Egress": pod -> peer). Not
    isolated in that direction (no policy of that type selects the pod): {"*"}."""
    own_namespace = one(docs, "Namespace")["metadata"]["name"]
    applied = [p for p in of_kind(docs, "NetworkPolicy") if selects(p["spec"]["podSelector"], pod.labels)]
    isolating = [p for p in applied if direction in p["spec"].get("policyTypes", ["Ingress"])]
    if not isolating:
        return {"*"}
    key, peers_key = direction.lower(), "from" if direction == "Ingress" else "to"
    opened: set[str] = set()
    for policy in isolating:
        for rule in policy["spec"].get(key, []) or []:
            peers = rule.get(peers_key)
            if peers is not None and not any(_peer_matches(entry, peer, own_namespace) for entry in peers):
                continue
            ports = rule.get("ports") or []
            opened |= {f"{p.get('protocol', 'TCP')}/{p['port']}" for p in ports} or {"*"}
    return opened
