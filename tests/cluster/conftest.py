"""A 3-node mesh on loopback (real processes), with an optional supervisor.

The supervisor plays systemd's `Restart=always`: a node process that exits is
started again with the same flags and data directory, which is what a
rolling restart or `/ha/shutdown` of one node relies on.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import netns
from tests.support import (
    MESH_SECRET,
    ROOT,
    Node,
    Proc,
    free_port,
    start_echo_worker,
    wait_for,
)

MODEL = "echo-model"


class Mesh:
    def __init__(
        self, tmp_path: Path, size: int = 3, extra: tuple[str, ...] = (), workers: int = 1
    ) -> None:
        self.tmp_path = tmp_path
        self.workers: list[tuple[Proc, str]] = [
            start_echo_worker(tmp_path, model=MODEL) for _ in range(workers)
        ]
        raft_ports = [free_port() for _ in range(size)]
        self.raft = [f"127.0.0.1:{p}" for p in raft_ports]
        self.nodes: list[Node] = []
        for i in range(size):
            peers = [a for j, a in enumerate(self.raft) if j != i]
            self.nodes.append(
                Node(
                    tmp_path,
                    "--mesh-bind",
                    self.raft[i],
                    "--mesh-peers",
                    *peers,
                    "--mesh-secret",
                    MESH_SECRET,
                    "--worker-urls",
                    *[url for _, url in self.workers],
                    "--health-check-interval-secs",
                    "1",
                    *extra,
                    name=f"n{i + 1}",
                )
            )
        self.exit_codes: dict[str, list[int]] = {n.name: [] for n in self.nodes}
        self._supervising = False
        self._supervisor: threading.Thread | None = None

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def status(self, via: Node | None = None) -> dict[str, Any]:
        for node in [via] if via else self.nodes:
            try:
                return requests.get(node.url + "/ha/status", timeout=2).json()  # type: ignore[no-any-return]
            except requests.RequestException:
                continue
        raise AssertionError("no node answered /ha/status")

    def leader(self) -> Node:
        def find() -> Node | None:
            for node in self.nodes:
                if not node.proc.alive():
                    continue
                try:
                    status = requests.get(node.url + "/ha/status", timeout=2).json()
                except requests.RequestException:
                    continue
                name = (status.get("leader") or {}).get("name")
                if name and status["role"] == "leader" and name == node.name:
                    return node
            return None

        return wait_for(find, timeout=15, what="a leader")  # type: ignore[no-any-return]

    def followers(self) -> list[Node]:
        leader = self.leader()
        return [n for n in self.nodes if n is not leader]

    def wait_ready_with(self, headers: dict[str, str], timeout: float = 30.0) -> None:
        """wait_ready() for a mesh whose /ha routes need credentials."""
        for node in self.nodes:
            node.wait_ready(timeout)
        wait_for(
            lambda: all(
                len(
                    [
                        m
                        for m in requests.get(
                            n.url + "/ha/status", headers=headers, timeout=2
                        ).json()["nodes"]
                        if m["status"] == "alive"
                    ]
                )
                == len(self.nodes)
                for n in self.nodes
            ),
            timeout=timeout,
            what="every node sees every other alive",
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.wait_ready(timeout)
        wait_for(
            lambda: all(
                len([m for m in self.status(n)["nodes"] if m["status"] == "alive"])
                == len(self.nodes)
                for n in self.nodes
            ),
            timeout=timeout,
            what="every node sees every other alive",
        )

    def supervise(self) -> None:
        """Restart any node that exits, like systemd's Restart=always."""
        self._supervising = True

        def loop() -> None:
            while self._supervising:
                for node in self.nodes:
                    code = node.proc.popen.poll()
                    if code is not None and self._supervising:
                        self.exit_codes[node.name].append(code)
                        node.proc.wait_exit(1)
                        node.restart()
                threading.Event().wait(0.05)

        self._supervisor = threading.Thread(target=loop, daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        self._supervising = False
        if self._supervisor:
            self._supervisor.join(5)
        for proc in [n.proc for n in self.nodes] + [w for w, _ in self.workers]:
            proc.terminate()
        for proc in [n.proc for n in self.nodes] + [w for w, _ in self.workers]:
            proc.stop()


def joining_voter(mesh: Mesh, tmp_path: Path, name: str, *extra: str) -> tuple[Node, str]:
    """A voter started to join `mesh` (add it with POST /ha/members), and its Raft address."""
    raft = f"127.0.0.1:{free_port()}"
    node = Node(
        tmp_path,
        "--mesh-bind",
        raft,
        "--mesh-peers",
        *mesh.raft,
        "--mesh-secret",
        MESH_SECRET,
        *extra,
        name=name,
    )
    return node, raft


def cluster_cli(mesh: Mesh, *args: str) -> subprocess.CompletedProcess[str]:
    """`meshgate cluster ARGS --url <the first node>`."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "cluster", *args, "--url", mesh.nodes[0].url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        m.wait_ready()
        yield m
    finally:
        m.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mesh_args(*args): extra `meshgate serve` flags")


@pytest.fixture
def netns_mesh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[netns.NetnsMesh]:
    """A 3-node mesh with each node in its own network namespace (tests/netns.py), so a
    test can cut and heal a node's link; skipped where namespaces are unavailable.
    `@pytest.mark.mesh_args(...)` adds flags to every node."""
    problem = netns.unavailable()
    if problem:
        pytest.skip(f"partition tests need Linux network namespaces: {problem}")
    marker = request.node.get_closest_marker("mesh_args")
    m = netns.NetnsMesh(tmp_path, extra=tuple(marker.args) if marker else ())
    try:
        m.wait_ready()
        yield m
    finally:
        m.stop()
