"""gateway_overhead.py's processes: echo workers (or given backends) and one gateway node.

They are started with the package's local-mesh harness (`node.localmesh.LocalMesh`,
a mesh of one node), so exactly as the demo and the tests start them; this module
adds what the benchmark needs on top: a stricter readiness check (every worker
healthy, not just one) and CPU readings of each process and of the whole machine.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from common import CLK_TCK, BenchError, cpu_seconds, exited

from node.localmesh import Child, LocalMesh, LocalMeshError, stop_all

# Loopback only: never send the benchmark's polls through an HTTP proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine spent busy so far (/proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]; guest is in user.
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(
    proc: Child | None, what: str, check: Callable[[], str | None], timeout: float
) -> None:
    """Poll `check` (None = done, else why not yet) until `timeout`; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    last = "not checked yet"
    while True:
        if proc is not None and not proc.alive():
            raise exited(proc, f"before {what}")
        try:
            problem = check()
        except (OSError, ValueError) as exc:  # not listening yet, or a half-written answer
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        last = problem
        if time.monotonic() >= deadline:
            tail = f"\nlast lines of {proc.log_path}:\n{proc.tail()}" if proc else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} ({last}){tail}")
        time.sleep(0.05)


def status_is_200(url: str) -> Callable[[], str | None]:
    def check() -> str | None:
        status, body = http_get(url)
        return None if status == 200 else f"{url} answered {status}: {body[:200]!r}"

    return check


def gateway_ready(base: str, workers: int) -> Callable[[], str | None]:
    """Ready, and every worker discovered and healthy (readiness alone needs only one)."""

    def check() -> str | None:
        status, body = http_get(base + "/readiness")
        if status != 200:
            return f"/readiness answered {status}: {body[:200]!r}"
        status, body = http_get(base + "/health")
        healthy = json.loads(body).get("workers", {}).get("healthy", 0) if status == 200 else 0
        return None if healthy >= workers else f"{healthy} of {workers} workers healthy"

    return check


def gateway_flags(policy: str) -> list[str]:
    """A benchmarked node's flags: the policy, and limits far above any load a bench sends."""
    return [
        "--policy",
        policy,
        "--max-concurrent-requests",
        "1024",
        "--queue-size",
        "4096",
        "--log-level",
        "warning",
    ]


class Cluster:
    """The gateway node and its echo workers (none with --backend-url), under `tmp`."""

    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        external = [u.rstrip("/") for u in args.backend_url or []]
        self.mesh = LocalMesh(
            tmp,
            nodes=1,
            names=["gateway"],
            workers=0 if external else args.workers,
            model=args.model,
            node_args=[
                *(["--worker-urls", *external] if external else []),
                *gateway_flags(args.policy),
                "--shutdown-grace-secs",
                "5",
            ],
            # Stop at once on SIGTERM instead of serving on for the drain delay (a load
            # balancer's grace time). An environment variable, because nodes without the
            # setting ignore it.
            env={
                "MESHGATE_DRAIN_DELAY_SECS": "0",
                "MESHGATE_GRPC_STREAM_INTERVAL": str(args.grpc_stream_interval),
            },
        )
        self.backend_urls = external or self.mesh.worker_urls
        self.extra: list[Child] = []  # started later (--grpc: the gRPC worker)

    @property
    def gateway_url(self) -> str:
        return self.mesh.urls[0] if self.mesh.nodes else ""

    @property
    def gateway(self) -> Child | None:
        return self.mesh.nodes[0].proc if self.mesh.nodes else None

    @property
    def workers(self) -> list[Child]:
        return [w.proc for w in self.mesh.workers]

    def procs(self) -> list[Child]:
        return [*self.mesh.children(), *self.extra]

    def cpu_snapshot(self) -> dict[str, float | None]:
        """CPU seconds so far of this process ("loadgen"), the gateway, the workers, all."""
        snap: dict[str, float | None] = {"loadgen": time.process_time()}
        snap["gateway"] = cpu_seconds(self.gateway) if self.gateway else None
        worker_cpu = [cpu_seconds(w) for w in self.workers]
        ok = bool(worker_cpu) and all(c is not None for c in worker_cpu)
        snap["workers"] = sum(c for c in worker_cpu if c is not None) if ok else None
        snap["machine"] = machine_busy_seconds()  # everything, for "rest of machine"
        return snap

    def stop(self) -> None:
        self.mesh.stop()  # the gateway first: it never sees its workers vanish
        stop_all(self.extra)


def start_cluster(args: argparse.Namespace, cluster: Cluster) -> None:
    """Start the workers (or wait for the given backends), then the gateway, until ready."""
    if args.backend_url:
        for url in cluster.backend_urls:
            check = status_is_200(url + "/health")
            wait_until(None, f"backend {url}/health to answer 200", check, args.startup_timeout)
    try:
        cluster.mesh.start_workers(args.startup_timeout)
    except LocalMeshError as exc:
        raise BenchError(str(exc)) from None
    cluster.mesh.start_nodes()
    wait_until(
        cluster.gateway,
        f"{cluster.gateway_url}/readiness with all {len(cluster.backend_urls)} worker(s) healthy",
        gateway_ready(cluster.gateway_url, len(cluster.backend_urls)),
        args.startup_timeout,
    )
