"""Real network partitions for tests: each node in its own Linux network namespace.

A `Lab` builds a private network in the root namespace:

    root namespace (the test process)
      bridge  10.201.X.1/24 ──┬── port (veth) ── ns 1: eth0 10.201.X.11   Raft + node-to-node HTTP
                              ├── port (veth) ── ns 2: eth0 10.201.X.12
                              └── ...
      mgmt link 10.202.X.(4i+1)/30 ─────────── ns i: mgmt 10.202.X.(4i+2)  the test's own HTTP

`cut(i)` sets node i's bridge port down: a pulled cable, packets dropped
without a reset, and `heal(i)` sets it up again. The nodes talk to each other
(Raft and HTTP) only over the bridge, so a cut isolates a node completely from
its peers; the test process reaches every node over a separate point-to-point
management link that is never cut (no namespace has a route beyond its own two
links, and the root namespace does not forward), so it can poll a node that is
cut off. The echo worker listens on the bridge address in the root namespace.

Names carry a random tag per lab and the subnets are chosen under a file lock
among those no route uses, so parallel runs do not collide. Everything is
deleted in `close()` (the fixtures call it, also after failures), and a lab
left behind by a killed run is swept by the next one: each lab records what it
made, with its owner's pid, under `REGISTRY`.

Where namespaces are unavailable (not root, no `ip`), `unavailable()` says why
and the tests skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from node.localmesh import echo_worker_args, serve_args, stop_all
from tests.support import MESH_SECRET, Proc, strong, wait_for

REGISTRY = Path("/tmp/meshgate-netns")
HTTP_PORT = 8080
RAFT_PORT = 7000
ADMIN_KEY = strong("netns-admin")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "echo-model"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


@functools.cache
def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the partition tests as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    probe = f"mgprobe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(record: dict[str, Any]) -> None:
    """Delete what a lab made: its processes' namespaces, then its links (idempotent)."""
    for ns in record.get("namespaces", []):
        for pid in _ip("netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", ns, check=False)
    for link in record.get("links", []):
        _ip("link", "del", link, check=False)


def sweep_orphans() -> None:
    """Remove labs whose owner process is gone (a run killed before its teardown)."""
    if not REGISTRY.is_dir():
        return
    for path in REGISTRY.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(record.get("pid", 0))):
            _remove(record)
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_octet() -> int:
    """An X such that neither 10.201.X.0/24 nor 10.202.X.0/24 is routed here yet."""
    routes = _ip("-4", "route", "show", "table", "all").stdout
    taken = set()
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        for prefix in ("10.201.", "10.202."):
            if first.startswith(prefix):
                taken.add(int(first.split(".")[2]))
    choices = [x for x in range(256) if x not in taken]
    if not choices:
        raise RuntimeError("no free 10.201.X.0/24 subnet for a test lab")
    return secrets.choice(choices)


class Lab:
    """A private bridge with `size` namespaces on it (see the module docstring)."""

    def __init__(self, size: int) -> None:
        sweep_orphans()
        self.size = size
        self.tag = secrets.token_hex(3)  # interface names are at most 15 characters
        self.bridge = f"mgb{self.tag}"
        self.namespaces = [f"mg-{self.tag}-{i + 1}" for i in range(size)]
        self._ports = [f"mg{self.tag}p{i + 1}" for i in range(size)]  # bridge ports
        self._mgmt = [f"mg{self.tag}m{i + 1}" for i in range(size)]  # root ends of mgmt links
        self._record_path = REGISTRY / f"{self.tag}.json"
        self.cuts: set[int] = set()
        with _locked():
            x = _free_octet()
            self.bridge_ip = f"10.201.{x}.1"
            self._record()
            try:
                self._build(x)
            except BaseException:
                self.close()
                raise

    def _record(self) -> None:
        record = {
            "pid": os.getpid(),
            "namespaces": self.namespaces,
            "links": [self.bridge, *self._ports, *self._mgmt],
        }
        self._record_path.write_text(json.dumps(record))

    def _build(self, x: int) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, ns in enumerate(self.namespaces):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            port, peer = self._ports[i], f"mg{self.tag}q{i + 1}"
            _ip("link", "add", port, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", ns)
            _ip("-n", ns, "link", "set", peer, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("link", "set", port, "master", self.bridge)
            _ip("link", "set", port, "up")
            mgmt, inner = self._mgmt[i], f"mg{self.tag}n{i + 1}"
            _ip("link", "add", mgmt, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("-n", ns, "link", "set", inner, "name", "mgmt")
            _ip("addr", "add", f"10.202.{x}.{4 * i + 1}/30", "dev", mgmt)
            _ip("-n", ns, "addr", "add", f"10.202.{x}.{4 * i + 2}/30", "dev", "mgmt")
            _ip("link", "set", mgmt, "up")
            _ip("-n", ns, "link", "set", "mgmt", "up")
        self._mgmt_base = f"10.202.{x}"

    def ip(self, i: int) -> str:
        """Node i's address on the bridge (Raft and node-to-node HTTP)."""
        return f"{self.bridge_ip.rsplit('.', 1)[0]}.{11 + i}"

    def mgmt_ip(self, i: int) -> str:
        """Node i's address on its management link (the test's HTTP; never cut)."""
        return f"{self._mgmt_base}.{4 * i + 2}"

    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[i]]

    def cut(self, i: int) -> None:
        """Pull node i's cable: its bridge port goes down (packets dropped, no reset)."""
        _ip("link", "set", self._ports[i], "down")
        self.cuts.add(i)

    def heal(self, i: int) -> None:
        _ip("link", "set", self._ports[i], "up")
        self.cuts.discard(i)

    def port_bytes(self, i: int) -> tuple[int, int]:
        """(bytes the bridge received from node i, bytes it sent to node i) on its port."""
        base = Path("/sys/class/net") / self._ports[i] / "statistics"
        # The port is the root end of node i's veth: what it receives, node i sent.
        return int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text())

    def close(self) -> None:
        _remove({"namespaces": self.namespaces, "links": [self.bridge, *self._ports, *self._mgmt]})
        self._record_path.unlink(missing_ok=True)


class NsNode:
    """A `meshgate serve` process inside namespace i (the same surface as support.Node)."""

    def __init__(self, lab: Lab, i: int, tmp_path: Path, args: list[str], name: str) -> None:
        self.lab = lab
        self.index = i
        self.name = name
        self.url = f"http://{lab.mgmt_ip(i)}:{HTTP_PORT}"
        self.raft_address = f"{lab.ip(i)}:{RAFT_PORT}"
        self.data_dir = tmp_path / f"data-{name}"
        self.tmp_path = tmp_path
        self.args = serve_args(
            name,
            HTTP_PORT,
            self.data_dir,
            host="0.0.0.0",
            extra=[
                "--http-advertise-url",
                f"http://{lab.ip(i)}:{HTTP_PORT}",
                "--log-level",
                "info",
                "--drain-delay-secs",
                "0",
                "--control-plane-api-keys",
                f"admin:admin:admin:{ADMIN_KEY}",
                *args,
            ],
        )
        self.proc = self._start()

    def _start(self) -> Proc:
        return Proc(
            self.args, self.tmp_path / f"{self.name}.log", wrap=self.lab.exec_prefix(self.index)
        )

    def restart(self) -> None:
        self.proc = self._start()

    def local(self, timeout: float = 2.0) -> dict[str, Any]:
        resp = requests.get(self.url + "/ha/local", headers=ADMIN, timeout=timeout)
        return resp.json()  # type: ignore[no-any-return]

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        resp = requests.get(self.url + "/ha/status", headers=ADMIN, timeout=timeout)
        return resp.json()  # type: ignore[no-any-return]

    def config(self, timeout: float = 5.0) -> tuple[dict[str, Any], int]:
        """This node's replicated config (key -> value) and the applied index it is from."""
        resp = requests.get(self.url + "/ha/config", headers=ADMIN, timeout=timeout)
        body = resp.json()
        return {c["key"]: c["value"] for c in body["config"]}, int(body["applied_index"])

    def ready(self) -> bool:
        try:
            # Data-plane ready, a leader known and a healthy worker (readiness alone
            # needs neither: static stability).
            if requests.get(self.url + "/readiness", timeout=1).status_code != 200:
                return False
            return bool(requests.get(self.url + "/health", timeout=1).json()["status"] == "healthy")
        except requests.RequestException:
            return False


class NetnsMesh:
    """A 3-node mesh, one node per namespace, and one echo worker on the bridge."""

    def __init__(self, tmp_path: Path, size: int = 3, extra: tuple[str, ...] = ()) -> None:
        self.lab = Lab(size)
        self.workers: list[Proc] = []
        self.nodes: list[NsNode] = []
        try:
            worker_port = 18000 + secrets.randbelow(20000)
            worker_url = f"http://{self.lab.bridge_ip}:{worker_port}"
            worker_args = echo_worker_args(worker_port, MODEL, host=self.lab.bridge_ip)
            self.workers.append(Proc(worker_args, tmp_path / "echo.log"))
            self.raft = [f"{self.lab.ip(i)}:{RAFT_PORT}" for i in range(size)]
            for i in range(size):
                peers = [a for j, a in enumerate(self.raft) if j != i]
                args = ["--mesh-bind", self.raft[i], "--mesh-peers", *peers]
                args += ["--mesh-secret", MESH_SECRET, "--worker-urls", worker_url]
                args += ["--health-check-interval-secs", "1", *extra]
                self.nodes.append(NsNode(self.lab, i, tmp_path, args, f"n{i + 1}"))
        except BaseException:
            self.stop()
            raise

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> NsNode:
        return next(n for n in self.nodes if n.name == name)

    def cut(self, node: NsNode) -> None:
        self.lab.cut(node.index)

    def heal(self, node: NsNode) -> None:
        self.lab.heal(node.index)

    def heal_all(self) -> None:
        for i in list(self.lab.cuts):
            self.lab.heal(i)

    def wait_ready(self, timeout: float = 45.0) -> None:
        for node in self.nodes:
            wait_for(
                node.ready, timeout=timeout, what=f"{node.name} ready:\n{node.proc.log()[-3000:]}"
            )
        wait_for(
            lambda: all(
                sum(1 for m in n.status()["nodes"] if m["status"] == "alive") == len(self.nodes)
                for n in self.nodes
            ),
            timeout=timeout,
            what="every node sees every other alive",
        )

    def leader(self, among: list[NsNode] | None = None, timeout: float = 15.0) -> NsNode:
        """The node that says it leads, among `among` (default: all), agreed by itself."""

        def find() -> NsNode | None:
            for node in among or self.nodes:
                try:
                    local = node.local(timeout=1)
                except requests.RequestException:
                    continue
                if local.get("role") == "leader":
                    return node
            return None

        return wait_for(find, timeout=timeout, what="a leader")  # type: ignore[no-any-return]

    def stop(self) -> None:
        stop_all([n.proc for n in self.nodes] + self.workers, grace=10)
        self.lab.close()
