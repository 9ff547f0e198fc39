"""A meshgate mesh on this machine: N `meshgate serve` processes and their echo workers.

`meshgate demo`, the cluster tests and the benchmarks all need the same thing: a
few nodes on free loopback ports that agree through Raft, authenticated with a
strong secret made for the run, each with its own data directory and log, and
every process stopped at the end whatever happened. This module builds their
command lines, starts them, waits (each wait a poll with a deadline that gives
up early when the process exits) until each node is ready and the group agrees
on a leader, and stops them.

The secret reaches the nodes through their environment, never their command
lines, where any local user could read it.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from node.identity.strength import generate
from node.localmesh.process import Child, free_ports, stop_all

ECHO_MODEL = "echo-model"
SECRET_ENV = "MESHGATE_MESH_SECRET"
# Loopback only: never send these polls through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalMeshError(Exception):
    """A process of the local mesh did not start, or not in time; the message says which."""


def serve_args(
    name: str,
    port: int,
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    raft_bind: str | None = None,
    raft_peers: Sequence[str] = (),
    worker_urls: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """The `meshgate serve` command line of one node (without the secret). One process
    unless `extra` says otherwise (`--processes N`, later, wins): the same on any machine."""
    args = ["serve", "--host", host, "--port", str(port), "--node-name", name]
    args += ["--processes", "1"]
    args += ["--data-dir", str(data_dir)]
    if raft_bind is not None:
        args += ["--mesh-bind", raft_bind, "--mesh-peers", *raft_peers]
    if worker_urls:
        args += ["--worker-urls", *worker_urls]
    return [*args, *extra]


def echo_worker_args(
    port: int, model: str = ECHO_MODEL, *, host: str = "127.0.0.1", extra: Sequence[str] = ()
) -> list[str]:
    """The `meshgate echo-worker` command line of one worker."""
    return ["echo-worker", "--host", host, "--port", str(port), "--model", model, *extra]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Did GET `url` answer 200?"""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def get_json(url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> Any:
    """GET `url` and decode its JSON body; raises OSError or ValueError on failure."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with _NO_PROXY.open(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_until(
    check: Callable[[], bool], what: str, timeout: float, child: Child | None = None
) -> None:
    """Poll `check` until it holds; LocalMeshError at the deadline or when `child` exits."""
    deadline = time.monotonic() + timeout
    see = f"; see {child.log_path}" if child is not None else ""
    while not check():
        if child is not None and not child.alive():
            raise LocalMeshError(f"{what}{see}")  # it exited
        if time.monotonic() > deadline:
            raise LocalMeshError(f"{what} within {timeout:.0f}s{see}")
        time.sleep(0.05)


class EchoWorker:
    """One `meshgate echo-worker` (named `name`, or echo-PORT by default)."""

    def __init__(
        self, workdir: Path, port: int, model: str, name: str = "", extra: Sequence[str] = ()
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.name = name or f"echo-{port}"
        flags = [*(("--name", name) if name else ()), *extra]
        args = echo_worker_args(port, model, extra=flags)
        self.proc = Child(args, workdir / f"{self.name}.log", label=f"echo worker {self.name}")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        check = functools.partial(http_ok, self.url + "/health")
        wait_until(check, f"{self.name} did not start", timeout, self.proc)


class LocalNode:
    """One `meshgate serve` process: its fixed ports, data directory and log, and the
    process itself (`proc`, replaced by `restart()`)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        port: int,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        raft_address: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.raft_address = raft_address
        self.data_dir = data_dir or workdir / f"data-{name}"
        self.log_path = workdir / f"{name}.log"
        self.args = serve_args(name, port, self.data_dir, extra=args)
        self.env = dict(env or {})
        self.starts = 0
        self.proc = self._start()

    def _start(self) -> Child:
        self.starts += 1
        label = f"node {self.name} (start #{self.starts})"
        return Child(self.args, self.log_path, env=self.env, label=label)

    def restart(self) -> None:
        """Start the node again, with the same flags and data directory."""
        if self.proc.alive():
            raise LocalMeshError(f"{self.name} is still running; cannot start it again")
        self.proc.close()
        self.proc = self._start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until /readiness answers 200 and /health says healthy: the node serves the data
        plane, knows a leader and has a healthy worker."""
        wait_until(self.fully_ready, f"{self.name} did not become ready", timeout, self.proc)

    def fully_ready(self) -> bool:
        if not http_ok(self.url + "/readiness"):
            return False
        try:
            return bool(get_json(self.url + "/health").get("status") == "healthy")
        except (OSError, ValueError):
            return False

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Until /liveness answers 200 (up and answering HTTP, ready or not)."""
        check = functools.partial(http_ok, self.url + "/liveness")
        wait_until(check, f"{self.name} did not start serving", timeout, self.proc)


class LocalMesh:
    """`nodes` meshgate nodes (named `names`, n1, n2... by default) on loopback, with
    `workers` echo workers (one per `worker_names` when given) serving `model`, under
    `workdir` (a fresh temporary directory, removed at stop(), when none is given).

    Each node gets `node_args` on its command line (after those this module
    builds), and `http_ports` when given (else free ones). A single node runs
    without Raft peers. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        nodes: int = 3,
        workers: int = 1,
        model: str = ECHO_MODEL,
        names: Sequence[str] = (),
        worker_names: Sequence[str] = (),
        http_ports: Sequence[int] = (),
        node_args: Sequence[str] = (),
        worker_args: Sequence[str] = (),
        extra_worker_urls: Sequence[str] = (),
        secret: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="meshgate-mesh-"))
        self.names = list(names) or [f"n{i + 1}" for i in range(nodes)]
        self.model = model
        self.secret = secret or generate()
        self.env = {**(env or {}), SECRET_ENV: self.secret}
        self.node_args = list(node_args)
        self.worker_args = list(worker_args)
        self.extra_worker_urls = list(extra_worker_urls)  # started by the caller (gRPC ones)
        self._worker_names = list(worker_names) or [""] * workers
        ports = free_ports(len(self.names) * (1 if http_ports else 2) + len(self._worker_names))
        self.http_ports = list(http_ports) or [ports.pop() for _ in self.names]
        self.worker_ports = [ports.pop() for _ in self._worker_names]
        many = len(self.names) > 1
        self.raft = [f"127.0.0.1:{ports.pop()}" for _ in self.names] if many else []
        self.workers: list[EchoWorker] = []
        self.nodes: list[LocalNode] = []

    # -- starting --------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> LocalMesh:
        """Start the workers, then the nodes; return once all are ready under one leader."""
        try:
            self.start_workers(timeout)
            self.start_nodes()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_workers(self, timeout: float = 30.0) -> None:
        for port, name in zip(self.worker_ports, self._worker_names, strict=True):
            self.workers.append(EchoWorker(self.workdir, port, self.model, name, self.worker_args))
        for worker in self.workers:
            worker.wait_healthy(timeout)

    def start_nodes(self) -> None:
        """Start every node (without waiting: see wait_ready)."""
        for i, name in enumerate(self.names):
            self.nodes.append(self._node(i, name))

    def _node(self, i: int, name: str) -> LocalNode:
        raft = self.raft[i] if self.raft else None
        port = self.http_ports[i]
        return LocalNode(self.workdir, name, port, self.node_flags(i), self.env, raft)

    def node_flags(self, i: int) -> list[str]:
        """Node i's flags after its name, port and data directory: its Raft address and
        peers, the workers, then `node_args`."""
        raft = self.raft[i] if self.raft else None
        peers = [a for a in self.raft if a != raft]
        flags = ["--mesh-bind", raft, "--mesh-peers", *peers] if raft else []
        if self.worker_urls:
            flags += ["--worker-urls", *self.worker_urls]
        return flags + self.node_args

    def wait_ready(self, timeout: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        """Until every node is ready, sees every other alive, and all name one leader
        (`headers` for nodes whose /ha routes need credentials)."""
        for node in self.nodes:
            node.wait_ready(timeout)
        if len(self.nodes) > 1:

            def agreed() -> bool:
                return self._agreed_leader(headers) is not None

            wait_until(agreed, "the nodes did not agree on a leader", timeout)

    def _agreed_leader(self, headers: Mapping[str, str] | None) -> str | None:
        leaders = set()
        for node in self.nodes:
            try:
                status = get_json(node.url + "/ha/status", headers)
            except (OSError, ValueError):
                return None
            alive = [m for m in status.get("nodes", []) if m.get("status") == "alive"]
            if len(alive) != len(self.nodes):
                return None
            leaders.add((status.get("leader") or {}).get("name"))
        leader = leaders.pop() if len(leaders) == 1 else None
        return leader if isinstance(leader, str) else None

    # -- reading ---------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def worker_urls(self) -> list[str]:
        """The echo workers' URLs, then `extra_worker_urls`: the nodes' --worker-urls."""
        own = [f"http://127.0.0.1:{port}" for port in self.worker_ports]
        return own + self.extra_worker_urls

    def node(self, name: str) -> LocalNode:
        return next(node for node in self.nodes if node.name == name)

    def children(self) -> list[Child]:
        """Every process, nodes first."""
        return [n.proc for n in self.nodes] + [w.proc for w in self.workers]

    # -- stopping --------------------------------------------------------------------

    def stop(self, grace: float = 15.0) -> None:
        """Stop every process (the nodes first: they never see their workers vanish),
        then remove the working directory if this mesh made it."""
        stop_all([n.proc for n in self.nodes], grace)
        stop_all([w.proc for w in self.workers], grace)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
