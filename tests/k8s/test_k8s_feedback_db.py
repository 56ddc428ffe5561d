"""Feedback storage on Kubernetes loses nothing: one PostgreSQL every replica writes to.

A per-pod SQLite file would be lost on restarts and NewCluster upgrades, and with several
workers a rating would reach a pod that never saw the response (404). So every target
ships a PostgreSQL StatefulSet on a PersistentVolumeClaim behind a headless Service, the
Serve settings point at it (the password from the SRE-provided Secret, as a mounted file,
never in the settings or the environment), and only the Ray pods can reach it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.k8s.conftest import TARGETS
from tests.k8s.manifests import (
    Peer,
    allowed_ports,
    mounted_at,
    one,
    ray_pods,
    selects,
    settings_of,
    statefulset_pods,
    volume,
)
from tests.k8s.test_k8s_manifests import sre_provided

PASSWORD_SECRET = "llm-serving-postgres"


def postgres(docs):
    """The StatefulSet, its pod and its database container."""
    sts = one(docs, "StatefulSet", "postgres")
    (pod,) = [p for p in statefulset_pods(docs) if p.group == "postgres"]
    return sts, pod, pod.spec["containers"][0]


def env_of(container) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize("target", TARGETS)
def test_feedback_url_is_the_postgres_service(rendered, target):
    docs = rendered[target]
    feedback = settings_of(docs).feedback
    url = make_url(feedback.database_url)
    assert feedback.enabled
    assert (url.get_backend_name(), url.get_driver_name()) == ("postgresql", "psycopg")
    assert url.password is None, "the password comes from the Secret file, never the settings"
    sts, pod, container = postgres(docs)
    service = one(docs, "Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "headless: DNS names the StatefulSet's pod"
    assert selects(service["spec"]["selector"], pod.labels)
    assert not any(selects(service["spec"]["selector"], p.labels) for p in ray_pods(docs))
    namespace = one(docs, "Namespace")["metadata"]["name"]
    name = service["metadata"]["name"]
    assert url.host in {name, f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"}
    (port,) = service["spec"]["ports"]
    assert (url.port or 5432) == port["port"] == 5432
    container_port = next(p for p in container["ports"] if p["name"] == port["targetPort"])
    assert container_port["containerPort"] == 5432
    env = env_of(container)
    assert (url.username, url.database) == (env["POSTGRES_USER"], env["POSTGRES_DB"])


@pytest.mark.parametrize("target", TARGETS)
def test_no_sqlite_anywhere(rendered, target):
    assert "sqlite" not in yaml.safe_dump_all(rendered[target]).lower()


@pytest.mark.parametrize("target", TARGETS)
def test_the_password_is_one_sre_provided_secret_mounted_as_files(rendered, target):
    docs = rendered[target]
    assert PASSWORD_SECRET in sre_provided()
    password_file = settings_of(docs).feedback.database_password_file
    assert password_file is not None
    for pod in ray_pods(docs):
        if pod.node_type != "worker":  # replicas (and their feedback store) run on workers only
            continue
        mount = mounted_at(pod.ray_container, str(PurePosixPath(password_file).parent))
        assert mount is not None and mount["readOnly"] is True
        secret = volume(pod, mount["name"])["secret"]
        assert secret["secretName"] == PASSWORD_SECRET
        assert [i["path"] for i in secret["items"]] == [PurePosixPath(password_file).name]
        assert secret["defaultMode"] & 0o007 == 0, "the password must not be world-readable"
        assert "password" in {i["key"] for i in secret["items"]}
    _, pod, container = postgres(docs)
    env = env_of(container)
    assert "POSTGRES_PASSWORD" not in env
    mount = mounted_at(container, str(PurePosixPath(env["POSTGRES_PASSWORD_FILE"]).parent))
    assert mount is not None and mount["readOnly"] is True
    secret = volume(pod, mount["name"])["secret"]
    assert secret["secretName"] == PASSWORD_SECRET
    assert {i["key"]: i["path"] for i in secret["items"]} == {"password": PurePosixPath(env["POSTGRES_PASSWORD_FILE"]).name}


@pytest.mark.parametrize("target", TARGETS)
def test_postgres_keeps_its_data_on_a_volume(rendered, target):
    sts, _, container = postgres(rendered[target])
    assert sts["spec"]["replicas"] == 1, "one primary: several would be separate databases"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert re.fullmatch(r"\d+Gi", claim["spec"]["resources"]["requests"]["storage"])
    policy = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    pgdata = PurePosixPath(env_of(container)["PGDATA"])
    assert pgdata.parent == PurePosixPath(mount["mountPath"]), "PGDATA: a subfolder (the volume root has lost+found)"


@pytest.mark.parametrize("target", TARGETS)
def test_postgres_pod_is_sized_probed_and_unprivileged(rendered, target):
    _, pod, container = postgres(rendered[target])
    image = container["image"]
    assert re.fullmatch(r"postgres:\d+\.\d+-bookworm(@sha256:[0-9a-f]{64})?", image), image
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"memory"} <= set(resources["limits"])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "pg_isready", f"{probe}: {command}"
    security = pod.spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] not in (None, 0)
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert security["fsGroup"] == security["runAsGroup"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod.spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_ray_pods_reach_postgres(rendered, target):
    docs = rendered[target]
    _, pod, _ = postgres(docs)
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for ray in ray_pods(docs):
        peer = Peer("10.244.1.7", ray.labels, namespace)
        assert allowed_ports(docs, pod, "Ingress", peer) == {"TCP/5432"}
        assert "TCP/5432" in allowed_ports(docs, ray, "Egress", Peer("10.244.2.9", pod.labels, namespace))
    strangers = [
        Peer("10.244.1.8", {"app": "debug-shell"}, namespace),  # another pod of the namespace
        Peer("10.244.1.9", {"app.kubernetes.io/name": "prometheus"}, "monitoring"),
        Peer("10.244.1.10", {"app.kubernetes.io/name": "kuberay-operator"}, "kuberay-system"),
        Peer("203.0.113.7"),  # outside the cluster
    ]
    for peer in strangers:
        assert allowed_ports(docs, pod, "Ingress", peer) == set(), peer
    # The database itself talks to nobody (it answers; it never dials out).
    for peer in [*strangers, Peer("10.244.1.7", ray_pods(docs)[0].labels, namespace)]:
        assert allowed_ports(docs, pod, "Egress", peer) == set(), peer
