"""Static stability through a real HAProxy (issue 10): losing quorum or every worker
never takes the nodes out of the load balancer.

- 2 of 3 nodes killed: the survivor stays UP and serves chat; control writes answer
  503 with Retry-After; restarted alone (no quorum), it serves from its journal.
- every worker stopped: the nodes stay UP, so `POST /workers` through the load
  balancer registers a new worker, which then serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.cluster.conftest import MODEL, Mesh
from tests.cluster.haproxy import FAST_CHECKS, HAProxy
from tests.support import start_echo_worker, wait_for

CHAT = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
# Far longer than HAProxy takes to mark a failing node DOWN (`fall 2` checks `inter` apart:
# 1 s as shipped, 0.4 s with FAST_CHECKS, which these tests use to wait less for DOWN and
# UP): ten checks of each node, five times what would take it out (it was 3 s).
WATCH_SECS = 2.0


def chat(url: str) -> requests.Response:
    return requests.post(url + "/v1/chat/completions", json=CHAT, timeout=15)


def chats_while_watching(lb: HAProxy, expect_up: set[str], check: Callable[[], None]) -> int:
    """Send chats through `lb` for WATCH_SECS, each checked by `check`, and read HAProxy's
    states between them: every node in `expect_up` must stay UP throughout."""
    deadline = time.monotonic() + WATCH_SECS
    sent = 0
    while time.monotonic() < deadline:
        check()
        sent += 1
        states = lb.states()
        assert all(states[name] == "UP" for name in expect_up), states
    return sent


def ok_chat(url: str) -> Callable[[], None]:
    def check() -> None:
        resp = chat(url)
        assert resp.status_code == 200 and '"choices"' in resp.text, resp.text[:300]

    return check


def healthy_workers(url: str) -> int:
    return int(requests.get(url + "/health", timeout=2).json()["workers"]["healthy"])


def test_the_last_node_stays_ready_and_serves_without_quorum(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    lb = None
    try:
        mesh.wait_ready()
        lb = HAProxy(tmp_path, mesh, checks=FAST_CHECKS)
        leader = mesh.leader()
        survivor = next(n for n in mesh.nodes if n is not leader)  # it loses its leader too
        gw = f"gw{mesh.nodes.index(survivor) + 1}"
        for node in mesh.nodes:
            if node is not survivor:
                node.proc.kill()
        wait_for(
            lambda: (
                set(lb.states().values()) == {"UP", "DOWN"}
                and requests.get(survivor.url + "/ha/health", timeout=2).status_code == 503
            ),
            what="the two killed nodes DOWN in HAProxy, and the survivor's control plane down",
        )
        assert requests.get(survivor.url + "/readiness", timeout=2).status_code == 200
        assert chats_while_watching(lb, {gw}, ok_chat(lb.url)) > 10

        write = requests.post(lb.url + "/ha/config", json={"key": "k", "value": 1}, timeout=15)
        assert write.status_code == 503, write.text
        assert int(write.headers["Retry-After"]) >= 1
        assert write.json()["error"]["outcome"] == "not_committed"

        # Restarted alone, it never catches up with a leader: it serves from its journal.
        survivor.proc.kill()
        wait_for(lambda: lb.states()[gw] == "DOWN", what=f"{gw} DOWN in HAProxy once killed")
        survivor.restart()
        wait_for(
            lambda: lb.states()[gw] == "UP" and healthy_workers(survivor.url) >= 1,
            timeout=30,
            what="the restarted survivor UP in HAProxy with a healthy worker",
        )
        local = requests.get(survivor.url + "/ha/local", timeout=2).json()
        assert local["ready"] and not local["caught_up"] and local["leader"] is None
        assert chats_while_watching(lb, {gw}, ok_chat(lb.url)) > 10
    finally:
        if lb is not None:
            lb.stop()
        mesh.stop()


def test_without_workers_the_nodes_stay_up_so_a_worker_can_be_added(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    lb = None
    new_worker = None
    try:
        mesh.wait_ready()
        lb = HAProxy(tmp_path, mesh, checks=FAST_CHECKS)
        for worker in mesh.workers:
            worker.proc.kill()
        wait_for(
            lambda: all(healthy_workers(n.url) == 0 for n in mesh.nodes),
            timeout=20,
            what="every node without a healthy worker",
        )

        def refused() -> None:
            resp = chat(lb.url)
            assert resp.status_code == 503 and "no healthy worker" in resp.text, resp.text

        chats_while_watching(lb, {"gw1", "gw2", "gw3"}, refused)

        new_worker, url = start_echo_worker(tmp_path)
        added = requests.post(lb.url + "/workers", json={"url": url}, timeout=15)
        assert added.status_code in (200, 201, 202), added.text
        wait_for(
            lambda: chat(lb.url).status_code == 200,
            timeout=30,
            what="the new worker serving through HAProxy",
        )
        assert chats_while_watching(lb, {"gw1", "gw2", "gw3"}, ok_chat(lb.url)) > 10
    finally:
        if new_worker is not None:
            new_worker.kill()
        if lb is not None:
            lb.stop()
        mesh.stop()
