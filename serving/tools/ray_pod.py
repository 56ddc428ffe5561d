"""Kubernetes probes and the preStop drain of the Ray pods of the RayService.

Runs inside the Ray containers (standard library only, so a probe costs one short
Python start, not an import of Ray):

    python -m serving.tools.ray_pod ready --node worker --serve-port 8000
    python -m serving.tools.ray_pod live  --node worker --serve-port 8000
    python -m serving.tools.ray_pod drain --serve-port 8000 --metrics-port 8080 --timeout 600

Exit code 0 means healthy (probes) or drained (drain); a probe prints why it failed.

Why these checks (KubeRay injects wget-based probes only when a container has none;
these replace them and add the application's own endpoints):

* Every Ray pod: the raylet is healthy (dashboard agent ``/api/local_raylet_healthz``);
  the head also checks the GCS (dashboard ``/api/gcs_healthz``). Same as KubeRay.
* Worker readiness: the node's Serve proxy is not draining (``/-/healthz`` answers 200;
  it answers 503 while Serve drains the node) and the app can generate (``/ready``).
  Only then does the pod sit behind the Serve Service.
* Worker liveness: the raylet, and the node's Serve proxy answers ``/-/healthz`` (200, or
  503 while draining); nothing listening is fine (Serve starts a proxy only on nodes that
  host a replica). The app's own liveness (``GET /health``: the engine is alive) is
  enforced per replica by Serve, whose replica health check runs the same engine check
  and replaces a failing replica: through the proxy, ``/health`` would reach a random
  replica anywhere in the cluster and restart the wrong pod.
* Drain (preStop): wait until this node has had nothing in flight for a while: no open
  client connection to the Serve port (the proxy's streams; also idle keep-alive
  connections a client could still send on) and no request in Ray's gauges of the proxy
  and the replicas (streams of other nodes' proxies served by a replica here), bounded
  by the longest generation time.
"""

from __future__ import annotations

import argparse
import http.client
import math
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit

RAYLET_HEALTH_PORT = 52365  # Ray dashboard agent (KubeRay: DefaultDashboardAgentListenPort)
RAYLET_HEALTH_PATH = "/api/local_raylet_healthz"
GCS_HEALTH_PORT = 8265  # Ray dashboard on the head
GCS_HEALTH_PATH = "/api/gcs_healthz"
PROXY_HEALTH_PATH = "/-/healthz"  # Ray Serve proxy: 200, or 503 while draining
APP_READY_PATH = "/ready"  # the app: 200 only when the model can generate
LIVE_PROXY_STATUSES = frozenset({200, 503})  # healthy, or draining: the proxy answers

# Ray gauges of requests in flight on this node (the proxy's and the replicas').
INFLIGHT_METRICS = (
    "ray_serve_num_ongoing_http_requests",
    "ray_serve_replica_processing_queries",
)
PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
TCP_ESTABLISHED = "01"


@dataclass(frozen=True)
class HTTPResult:
    """One HTTP GET: the status (None if none came back) and why not."""

    status: int | None
    body: str = ""
    refused: bool = False
    error: str = ""


def http_get(url: str, timeout_s: float) -> HTTPResult:
    """GET ``url`` on loopback; never raises."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read(4096).decode("utf-8", "replace")
        return HTTPResult(status=response.status, body=body)
    except ConnectionRefusedError:
        return HTTPResult(status=None, refused=True, error="connection refused")
    except (OSError, http.client.HTTPException) as exc:  # timeouts are OSError
        return HTTPResult(status=None, error=type(exc).__name__)
    finally:
        conn.close()


Fetch = Callable[[str, float], HTTPResult]


def _local(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


def ray_failures(node: str, fetch: Fetch, timeout_s: float) -> list[str]:
    """Why Ray on this pod is unhealthy (empty list: healthy)."""
    checks = [("raylet", _local(RAYLET_HEALTH_PORT, RAYLET_HEALTH_PATH))]
    if node == "head":
        checks.append(("gcs", _local(GCS_HEALTH_PORT, GCS_HEALTH_PATH)))
    failures = []
    for name, url in checks:
        result = fetch(url, timeout_s)
        if result.status != 200 or "success" not in result.body:
            failures.append(f"{name}: {result.status or result.error}")
    return failures


def readiness_failures(node: str, serve_port: int, fetch: Fetch, timeout_s: float) -> list[str]:
    """Why the pod must not receive traffic (empty list: ready)."""
    failures = ray_failures(node, fetch, timeout_s)
    if node == "worker" and not failures:
        for name, path in (("proxy", PROXY_HEALTH_PATH), ("app", APP_READY_PATH)):
            result = fetch(_local(serve_port, path), timeout_s)
            if result.status != 200:
                failures.append(f"{name} {path}: {result.status or result.error}")
                break
    return failures


def proxy_alive(result: HTTPResult) -> bool:
    """Whether the node's Serve proxy answer to ``/-/healthz`` means alive."""
    if result.refused:
        return True  # no proxy on this node: no replica here (yet), nothing to restart
    return result.status in LIVE_PROXY_STATUSES


def liveness_failures(node: str, serve_port: int, fetch: Fetch, timeout_s: float) -> list[str]:
    """Why the pod should be restarted (empty list: alive)."""
    failures = ray_failures(node, fetch, timeout_s)
    if node == "worker" and not failures:
        result = fetch(_local(serve_port, PROXY_HEALTH_PATH), timeout_s)
        if not proxy_alive(result):
            failures.append(f"proxy {PROXY_HEALTH_PATH}: {result.status or result.error}")
    return failures


def inflight_from_metrics(text: str, names: Iterable[str] = INFLIGHT_METRICS) -> float:
    """Sum of the in-flight gauges in a Prometheus text exposition."""
    wanted = tuple(names)
    total = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            try:
                value = float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
            if not math.isnan(value):
                total += value
    return total


def established_connections(port: int, tables: Sequence[Path] = PROC_NET_TCP) -> int:
    """Established TCP connections whose local port is ``port`` (from /proc/net/tcp*)."""
    port_hex = f"{port:04X}"
    count = 0
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].rsplit(":", 1)[-1] == port_hex:
                count += fields[3] == TCP_ESTABLISHED
    return count


def inflight(
    serve_port: int,
    metrics_port: int,
    fetch: Fetch,
    tables: Sequence[Path] = PROC_NET_TCP,
) -> float:
    """Work in flight on this node: open client connections plus Ray's in-flight gauges."""
    busy = float(established_connections(serve_port, tables))
    result = fetch(_local(metrics_port, "/metrics"), 5.0)
    if result.status == 200:
        busy += inflight_from_metrics(result.body)
    return busy


@dataclass(frozen=True)
class DrainPlan:
    """How long a terminating pod waits for its streams."""

    timeout_s: float  # the longest generation: nothing in flight outlives it
    deregister_s: float = 5.0  # endpoint removal reaches every kube-proxy/ingress
    poll_s: float = 2.0
    quiet_s: float = 10.0  # idle this long (covers Ray's metrics report interval)


def drain(
    plan: DrainPlan,
    busy: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until nothing is in flight for ``quiet_s`` or ``timeout_s`` passed.

    Returns True if the node went quiet, False if the deadline cut the wait.
    """
    start = clock()
    sleep(plan.deregister_s)
    deadline = start + plan.deregister_s + plan.timeout_s
    quiet_since: float | None = None
    while clock() < deadline:
        now = clock()
        if busy() > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        if quiet_since is not None and now - quiet_since >= plan.quiet_s:
            return True
        sleep(min(plan.poll_s, max(0.0, deadline - clock())))
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.tools.ray_pod", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("ready", "live"):
        probe = sub.add_parser(name, help=f"{name}ness probe")
        probe.add_argument("--node", choices=("head", "worker"), required=True)
        probe.add_argument("--serve-port", type=int, default=8000)
        probe.add_argument("--timeout", type=float, default=2.0, help="seconds per HTTP check")
    drainer = sub.add_parser("drain", help="preStop: wait for in-flight requests")
    drainer.add_argument("--serve-port", type=int, default=8000)
    drainer.add_argument("--metrics-port", type=int, default=8080)
    drainer.add_argument("--timeout", type=float, required=True, help="longest generation (s)")
    drainer.add_argument("--deregister-seconds", type=float, default=5.0)
    return parser


def main(argv: list[str] | None = None, fetch: Fetch = http_get) -> int:
    """Run one probe or the drain; the exit code is the verdict."""
    args = _parser().parse_args(argv)
    socket.setdefaulttimeout(10)
    if args.command == "drain":
        plan = DrainPlan(timeout_s=args.timeout, deregister_s=args.deregister_seconds)
        quiet = drain(plan, lambda: inflight(args.serve_port, args.metrics_port, fetch))
        print("drained" if quiet else "drain deadline reached", flush=True)
        return 0  # a failed preStop only logs an event; termination proceeds either way
    check = readiness_failures if args.command == "ready" else liveness_failures
    failures = check(args.node, args.serve_port, fetch, args.timeout)
    if failures:
        print("; ".join(failures), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
