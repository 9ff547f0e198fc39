"""Rotating the mesh secret on a live 3-node mesh under write load (docs/raft-transport.md).

Three rolling restarts, one node at a time, while writers send config writes
to the nodes a load balancer would send them to (every node but the one being
restarted): (1) primary old, previous new; (2) primary new, previous old;
(3) primary new only, once every node reports that no worker credential is
left that only the old secret opens. No write may fail, every acknowledged
write must be there at the end, and a worker registered with an API key
before the rotation must still be called with it. Then the attack: a member
restarted with only the old secret is refused by the rotated mesh, on its
Raft port and by its peers' `/ha/local`.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import requests

from node.ha.rotation import fingerprint
from node.localmesh import LocalNode
from node.localmesh.mesh import SECRET_ENV, EchoWorker
from tests.cluster.conftest import Mesh
from tests.support import MESH_SECRET, free_port, strong, wait_for
from tests.writers import Writers

PREVIOUS_ENV = "MESHGATE_MESH_SECRET_PREVIOUS"
OLD, NEW = MESH_SECRET, strong("the-next-mesh-secret")
KEYED_MODEL = "keyed-model"
WORKER_KEY = "sk-rotated-worker-8d2f6a1c"


class Balancer:
    """Which nodes a load balancer sends to: a node leaves before it is stopped."""

    def __init__(self, nodes: list[LocalNode]) -> None:
        self.serving = list(nodes)
        self._lock = threading.Lock()

    def pick(self) -> LocalNode:
        with self._lock:
            return random.choice(self.serving)

    def remove(self, node: LocalNode) -> None:
        with self._lock:
            self.serving.remove(node)

    def add(self, node: LocalNode) -> None:
        with self._lock:
            self.serving.append(node)


class Lane:
    """One writer's target (tests/writers.py): whichever node the balancer picks."""

    def __init__(self, name: str, balancer: Balancer) -> None:
        self.name = name
        self._balancer = balancer

    @property
    def url(self) -> str:
        return self._balancer.pick().url


def _local(node: LocalNode) -> dict[str, Any]:
    return requests.get(node.url + "/ha/local", timeout=2).json()  # type: ignore[no-any-return]


def _caught_up(node: LocalNode) -> bool:
    try:
        return bool(_local(node)["caught_up"])
    except (requests.RequestException, ValueError):
        return False


def _roll(balancer: Balancer, node: LocalNode, secret: str, previous: str | None) -> None:
    """Restart `node` with new secrets, out of the balancer while it is down."""
    balancer.remove(node)
    assert node.proc.stop(15) == 0, node.proc.tail()
    node.env[SECRET_ENV] = secret
    node.env.pop(PREVIOUS_ENV, None)
    if previous is not None:
        node.env[PREVIOUS_ENV] = previous
    node.restart()
    node.wait_ready()
    wait_for(lambda: _caught_up(node), timeout=20, what=f"{node.name} caught up")
    balancer.add(node)


def _phase(mesh: Mesh, balancer: Balancer, secret: str, previous: str | None) -> None:
    for node in mesh.nodes:
        _roll(balancer, node, secret, previous)
    want = {"sends": fingerprint(secret), "accepts": [fingerprint(secret)]}
    if previous is not None:
        want["accepts"].append(fingerprint(previous))
    mesh.wait_ready()  # every node sees every other alive: their peer tokens are taken
    for node in mesh.nodes:  # what an operator reads to know the phase reached every node
        said = _local(node)["mesh_secret"]
        assert {k: said[k] for k in want} == want, (node.name, said)


def _chat(node: LocalNode) -> int:
    body = {"model": KEYED_MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    return requests.post(node.url + "/v1/chat/completions", json=body, timeout=10).status_code


def _config(node: LocalNode) -> dict[str, Any]:
    body = requests.get(node.url + "/ha/config", timeout=5).json()
    return {c["key"]: c["value"] for c in body["config"]}


def test_rotating_the_mesh_secret_fails_no_write_and_keeps_credentials(tmp_path: Path) -> None:
    # A worker that needs an API key, started while the mesh starts.
    worker = EchoWorker(tmp_path, free_port(), KEYED_MODEL, extra=("--api-key", WORKER_KEY))
    mesh = None
    try:
        mesh = Mesh(tmp_path, extra=("--drain-delay-secs", "0.3"))
        mesh.wait_ready()
        worker.wait_healthy()
        added = requests.post(
            mesh.nodes[0].url + "/workers",
            json={"url": worker.url, "api_key": WORKER_KEY},
            timeout=10,
        )
        assert added.status_code == 202, added.text
        for node in mesh.nodes:
            wait_for(lambda n=node: _chat(n) == 200, what=f"{node.name} calls the keyed worker")

        balancer = Balancer(mesh.nodes)
        lanes = [Lane(f"lane{i}", balancer) for i in range(2)]
        with Writers(lanes, prefix="rot", timeout=10) as writers:
            _phase(mesh, balancer, OLD, NEW)  # 1: every node accepts the new secret
            first = mesh.nodes[0]
            _roll(balancer, first, NEW, OLD)
            # Sealed under the old secret, which the others still send with: kept as it is.
            assert _local(first)["mesh_secret"]["credentials_under_previous"] == 1
            # Each side takes the other's peer token (one sends new, the others old).
            mesh.wait_ready()
            for node in mesh.nodes[1:]:
                _roll(balancer, node, NEW, OLD)  # 2: every node sends with the new secret
            for node in mesh.nodes:  # the leader re-seals; each node says when it has it
                wait_for(
                    lambda n=node: _local(n)["mesh_secret"]["credentials_under_previous"] == 0,
                    what=f"{node.name}: no credential left under the old secret",
                )
            _phase(mesh, balancer, NEW, None)  # 3: the old secret is dropped
        assert len(writers.acknowledged()) > 100  # the rotation ran under load
        failed = [w for w in writers.snapshot() if not w.acknowledged]
        assert failed == [], failed[:5]
        for node in mesh.nodes:
            assert writers.lost(_config(node)) == [], node.name
            assert _chat(node) == 200, f"{node.name} cannot open the worker's credential"

        # The attack: a member back with only the old secret cannot join the rotated mesh.
        victim, others = mesh.nodes[2], mesh.nodes[:2]
        refused = {n.name: mesh.status(n)["refused_connections"] for n in others}
        assert victim.proc.stop(15) == 0
        victim.env[SECRET_ENV] = OLD
        victim.restart()
        victim.wait_serving()
        refused[victim.name] = 0  # a new process counts from 0
        for other in others:
            # The higher Raft address dials; the other side's port refuses the frames.
            judge = other if victim.raft_address > other.raft_address else victim
            wait_for(
                lambda j=judge: mesh.status(j)["refused_connections"] > refused[j.name],
                what=f"the Raft link {victim.name}-{other.name} refused at {judge.name}",
            )
            for asker, asked in ((other, victim), (victim, other)):
                wait_for(
                    lambda a=asker, b=asked: "401" in str(_peer(mesh, a, b.name).get("error")),
                    what=f"{asked.name} refuses the mesh token of {asker.name}",
                )
        marker = requests.post(
            others[0].url + "/ha/config", json={"key": "after-attack", "value": 1}, timeout=5
        )
        assert marker.status_code == 200
        seen = _local(victim)
        assert seen["leader"] is None and not seen["caught_up"], seen
        assert "after-attack" not in _config(victim)
    finally:
        if mesh is not None:
            mesh.stop()
        worker.proc.stop()


def _peer(mesh: Mesh, via: LocalNode, name: str) -> dict[str, Any]:
    return next(n for n in mesh.status(via)["nodes"] if n["name"] == name)  # type: ignore[no-any-return]
