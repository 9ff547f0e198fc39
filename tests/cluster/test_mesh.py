"""A 3-node Raft group of gateway nodes: agreement, failover, catch-up, snapshots, quorum."""

from __future__ import annotations

import random
import shutil
import threading
import time

import pytest
import requests

from tests.cluster.conftest import MODEL, Mesh
from tests.support import wait_for


def _config(node_url: str, key: str) -> dict | None:
    resp = requests.get(f"{node_url}/ha/config/{key}", timeout=2)
    return resp.json() if resp.status_code == 200 else None


def test_repeated_leader_kills_lose_no_acknowledged_write(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mesh = Mesh(
        tmp_path,
        extra=("--worker-startup-timeout-secs", "0.5", "--worker-startup-check-interval", "0.2"),
    )
    try:
        mesh.wait_ready()
        acked: list[str] = []
        attempted: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                url = f"http://127.0.0.1:9/w{i}"
                attempted.append(url)
                node = random.choice([n for n in mesh.nodes if n.proc.alive()])
                try:
                    resp = requests.post(node.url + "/workers", json={"url": url}, timeout=10)
                except requests.RequestException:
                    continue
                if resp.status_code == 202:
                    acked.append(url)

        thread = threading.Thread(target=writer)
        thread.start()
        for _ in range(3):
            before = len(acked)
            wait_for(lambda b=before: len(acked) >= b + 5, what="writes flowing")
            leader = mesh.leader()
            leader.proc.kill()
            before = len(acked)
            wait_for(
                lambda b=before: len(acked) >= b + 5,
                timeout=20,
                what="writes flowing after failover",
            )
            leader.restart()
            leader.wait_ready()
        stop.set()
        thread.join(30)

        for node in mesh.nodes:
            wait_for(
                lambda n=node: (
                    set(acked)
                    <= {
                        w["url"]
                        for w in requests.get(n.url + "/workers", timeout=5).json()["workers"]
                    }
                ),
                what=f"{node.name} holds every acknowledged worker",
            )
            urls = [
                w["url"] for w in requests.get(node.url + "/workers", timeout=5).json()["workers"]
            ]
            assert len(urls) == len(set(urls)), "a worker appears twice"
            assert set(urls) - set(mesh.worker_urls) <= set(attempted)
        assert len(acked) >= 15
    finally:
        mesh.stop()


def test_a_wiped_node_rejoins_from_a_snapshot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mesh = Mesh(
        tmp_path, extra=("--mesh-log-compaction-entries", "20", "--mesh-log-compaction-secs", "2")
    )
    try:
        mesh.wait_ready()
        for i in range(120):
            resp = requests.post(
                mesh.nodes[i % 3].url + "/ha/config", json={"key": f"k{i}", "value": i}, timeout=5
            )
            assert resp.status_code == 200
        victim = mesh.nodes[2]
        victim.proc.stop()
        shutil.rmtree(victim.data_dir)
        for i in range(120, 150):
            requests.post(
                mesh.nodes[0].url + "/ha/config", json={"key": f"k{i}", "value": i}, timeout=5
            )
        wait_for(lambda: (mesh.nodes[0].data_dir / "raft.dump").exists(), what="a snapshot")
        victim.restart()
        victim.wait_ready()
        wait_for(
            lambda: len(requests.get(victim.url + "/ha/config", timeout=5).json()["config"]) == 150,
            what="the wiped node has every key",
        )
        assert _config(victim.url, "k7")["value"] == 7
        status = mesh.status(mesh.nodes[0])
        assert status["log_entries"] < 150  # the journal was compacted
    finally:
        mesh.stop()


@pytest.fixture(scope="module")
def mesh(module_mesh: Mesh) -> Mesh:
    """One mesh for the module's tests below; those above start their own."""
    return module_mesh


def test_one_leader_and_a_follower_write_is_read_everywhere(mesh: Mesh) -> None:
    leaders = {(mesh.status(n)["leader"] or {}).get("name") for n in mesh.nodes}
    assert len(leaders) == 1 and None not in leaders
    status = mesh.status()
    assert status["node_count"] == 3 and status["stores"]["members"] == 3
    assert sorted(n["role"] for n in status["nodes"]) == ["follower", "follower", "leader"]

    follower = mesh.followers()[0]
    resp = requests.post(
        follower.url + "/ha/config", json={"key": "feature.flag", "value": {"on": True}}, timeout=5
    )
    assert resp.status_code == 200, resp.text
    version = resp.json()["version"]
    assert _config(follower.url, "feature.flag")["version"] == version  # read-your-write
    for node in mesh.nodes:
        wait_for(
            lambda n=node: (_config(n.url, "feature.flag") or {}).get("version") == version,
            what=f"{node.name} has the write",
        )
        record = _config(node.url, "feature.flag")
        assert record["value"] == {"on": True} and record["updated_by"].startswith(follower.name)

    stale = requests.post(
        mesh.nodes[0].url + "/ha/config",
        timeout=5,
        json={"key": "feature.flag", "value": 1, "expected_version": 1},
    )
    assert stale.status_code == 409
    deleted = requests.delete(f"{mesh.nodes[1].url}/ha/config/feature.flag", timeout=5)
    assert deleted.status_code == 200
    wait_for(
        lambda: all(_config(n.url, "feature.flag") is None for n in mesh.nodes),
        what="delete replicated",
    )


def test_leader_sigkill_fails_over_and_the_node_catches_up(mesh: Mesh) -> None:
    old = mesh.leader()
    old.proc.kill()
    survivor = next(n for n in mesh.nodes if n is not old)
    started = time.monotonic()

    def write() -> bool:
        resp = requests.post(
            survivor.url + "/ha/config", json={"key": "after-kill", "value": 1}, timeout=10
        )
        return resp.status_code == 200

    wait_for(write, timeout=10, what="a write after the leader died")
    assert time.monotonic() - started < 5
    new = mesh.leader()
    assert new is not old
    old.restart()
    old.wait_ready()
    wait_for(lambda: _config(old.url, "after-kill") is not None, what="restarted node caught up")
    mesh.wait_ready()


def test_no_quorum_is_a_fast_503_never_a_hang_or_a_false_success(mesh: Mesh) -> None:
    alone, *others = mesh.nodes
    for node in others:
        node.proc.kill()
    started = time.monotonic()
    resp = requests.post(alone.url + "/ha/config", json={"key": "orphan", "value": 1}, timeout=30)
    took = time.monotonic() - started
    # As a follower it knows no leader: not committed, either while making itself current
    # (NOT_CURRENT: the write was never sent, so it has no request id) or when sending the
    # write. As the leader it logged the command, which may commit once the others are
    # back: unknown (504: the wait ran out).
    assert resp.status_code in (503, 504)
    assert int(resp.headers["Retry-After"]) >= 1
    error = resp.json()["error"]
    assert (error["code"], error["outcome"]) in (
        ("NOT_CURRENT", "not_committed"),
        ("not_committed", "not_committed"),
        ("outcome_unknown", "unknown"),
    )
    assert ("request_id" in error) == (error["code"] != "NOT_CURRENT")
    assert took < 7  # the commit timeout (3 s), the clock allowance (1 s) and slack
    wait_for(
        lambda: requests.get(alone.url + "/ha/health", timeout=5).status_code == 503,
        what="/ha/health reports the lost quorum",
    )
    assert "quorum" in requests.get(alone.url + "/ha/health", timeout=5).text
    for node in others:
        node.restart()
    mesh.wait_ready()  # every node ready, and all agree on a leader
    assert (
        requests.post(
            alone.url + "/ha/config", json={"key": "back", "value": 1}, timeout=10
        ).status_code
        == 200
    )


def test_workers_and_policies_replicate(mesh: Mesh) -> None:
    wid = requests.get(mesh.nodes[0].url + "/workers", timeout=5).json()["workers"][0]["id"]
    requests.put(
        f"{mesh.nodes[1].url}/policies/{MODEL}", json={"policy": "least_load"}, timeout=5
    ).raise_for_status()
    for node in mesh.nodes:
        wait_for(
            lambda n=node: (
                requests.get(f"{n.url}/ha/policies/{MODEL}", timeout=5).status_code == 200
            ),
            what="policy replicated",
        )
        ha = requests.get(f"{node.url}/ha/workers/{wid}", timeout=5).json()
        assert ha["id"] == wid and set(ha["health_by_node"]) == {"n1", "n2", "n3"}
        chat = requests.post(
            node.url + "/v1/chat/completions",
            timeout=10,
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200 and chat.headers["x-meshgate-worker"] == wid
