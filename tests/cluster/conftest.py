"""A 3-node mesh on loopback (real processes), with an optional supervisor.

The supervisor plays the shipped systemd unit: `Restart=always`, so a node
process that exits is started again with the same flags and data directory,
which is what a rolling restart or `/ha/shutdown` of one node relies on; and
`RestartPreventExitStatus=`, read from the unit, so that a cluster shutdown
stays down.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from node.localmesh import LocalMesh, LocalNode
from tests import netns
from tests.support import (
    MESH_SECRET,
    ROOT,
    TEST_NODE_FLAGS,
    Node,
    free_port,
    systemd_unit_values,
    wait_for,
)

MODEL = "echo-model"


class Mesh(LocalMesh):
    """A mesh of `size` nodes n1, n2... and `workers` echo workers, started at once (the
    `mesh` fixture, or the test, waits for it); every node gets `extra` flags and `env`."""

    def __init__(
        self,
        tmp_path: Path,
        size: int = 3,
        extra: tuple[str, ...] = (),
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        flags = [*TEST_NODE_FLAGS, "--health-check-interval-secs", "1", *extra]
        super().__init__(
            tmp_path,
            nodes=size,
            workers=workers,
            model=MODEL,
            secret=MESH_SECRET,
            node_args=flags,
            env=env,
        )
        self.tmp_path = tmp_path
        self.exit_codes: dict[str, list[int]] = {name: [] for name in self.names}
        self.left_down: list[str] = []  # nodes the supervisor did not restart, in order
        self._supervising = False
        self._supervisor: threading.Thread | None = None
        try:
            self.start_workers(timeout=15)
            self.start_nodes()
        except BaseException:
            self.stop()
            raise

    def status(self, via: LocalNode | None = None) -> dict[str, Any]:
        for node in [via] if via else self.nodes:
            try:
                return requests.get(node.url + "/ha/status", timeout=2).json()  # type: ignore[no-any-return]
            except requests.RequestException:
                continue
        raise AssertionError("no node answered /ha/status")

    def leader(self) -> LocalNode:
        def find() -> LocalNode | None:
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

    def followers(self) -> list[LocalNode]:
        leader = self.leader()
        return [n for n in self.nodes if n is not leader]

    def wait_ready_with(self, headers: dict[str, str], timeout: float = 30.0) -> None:
        """wait_ready() for a mesh whose /ha routes need credentials."""
        self.wait_ready(timeout, headers)

    def supervise(self, hold: Callable[[str], bool] = lambda name: False) -> None:
        """Restart any node that exits, like systemd's Restart=always, unless its status is
        one the unit lists in RestartPreventExitStatus= (the node is then left down). A node
        for which `hold(name)` is true stays down until it turns false (a slow restart)."""
        self._supervising = True
        prevent = {int(v) for v in systemd_unit_values("RestartPreventExitStatus")}
        left: set[subprocess.Popen[bytes]] = set()  # processes seen exiting and left down

        def loop() -> None:
            while self._supervising:
                for node in self.nodes:
                    code = node.proc.popen.poll()
                    if code is None or not self._supervising or node.proc.popen in left:
                        continue
                    if hold(node.name):
                        continue
                    self.exit_codes[node.name].append(code)
                    if code in prevent:
                        left.add(node.proc.popen)
                        self.left_down.append(node.name)
                        continue
                    node.proc.wait_exit(1)
                    node.restart()
                threading.Event().wait(0.05)

        self._supervisor = threading.Thread(target=loop, daemon=True)
        self._supervisor.start()

    def stop(self, grace: float = 15.0) -> None:
        self._supervising = False
        if self._supervisor:
            self._supervisor.join(5)
        super().stop(grace)


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


def _ready_mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        m.wait_ready()
        yield m
    finally:
        m.stop()


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    yield from _ready_mesh(tmp_path)


@pytest.fixture(scope="module")
def module_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A mesh shared by a module's tests, each of which leaves it whole: every node up and
    ready, one leader. Put the module's tests that start meshes of their own before the
    first that takes it, so that no idle mesh runs beside them."""
    yield from _ready_mesh(tmp_path_factory.mktemp("mesh"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mesh_args(*args): extra `meshgate serve` flags")


def _netns_mesh(tmp_path: Path, extra: tuple[str, ...] = ()) -> Iterator[netns.NetnsMesh]:
    problem = netns.unavailable()
    if problem:
        pytest.skip(f"partition tests need Linux network namespaces: {problem}")
    m = netns.NetnsMesh(tmp_path, extra=extra)
    try:
        m.wait_ready()
        yield m
    finally:
        m.stop()


@pytest.fixture
def netns_mesh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[netns.NetnsMesh]:
    """A 3-node mesh with each node in its own network namespace (tests/netns.py), so a
    test can cut and heal a node's link; skipped where namespaces are unavailable.
    `@pytest.mark.mesh_args(...)` adds flags to every node."""
    marker = request.node.get_closest_marker("mesh_args")
    yield from _netns_mesh(tmp_path, tuple(marker.args) if marker else ())


@pytest.fixture(scope="module")
def module_netns_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[netns.NetnsMesh]:
    """netns_mesh (default flags) shared by a module's tests: each must leave it whole,
    every link healed and every node caught up."""
    yield from _netns_mesh(tmp_path_factory.mktemp("netns"))
