"""The admin API on a mesh: runtime config and breaker resets reach every node."""

from __future__ import annotations

import threading
from collections import Counter

import requests

from tests.cluster.conftest import MODEL, Mesh
from tests.support import wait_for

CHAT = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}


def test_runtime_config_put_on_one_node_changes_every_node(mesh: Mesh) -> None:
    worker_url = mesh.worker_urls[0]
    requests.post(worker_url + "/_faults", json={"latency_ms": 800}, timeout=5)
    before = requests.get(mesh.nodes[2].url + "/admin/config", timeout=5).json()
    assert before["config"]["max_concurrent_requests"] == 256 and before["version"] == 0

    resp = requests.put(
        mesh.nodes[0].url + "/admin/config",
        timeout=5,
        json={"max_concurrent_requests": 1, "queue_size": 0},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["updated_fields"] == ["max_concurrent_requests", "queue_size"]
    for node in mesh.nodes:
        wait_for(
            lambda n=node: (
                requests.get(n.url + "/admin/config", timeout=5).json()["config"]["queue_size"] == 0
            ),
            what=f"{node.name} has the new config",
        )

    for node in mesh.nodes:  # two requests at once: the second is refused on every node
        codes: Counter[int] = Counter()

        def call(url: str = node.url, tally: Counter[int] = codes) -> None:
            tally[
                requests.post(url + "/v1/chat/completions", json=CHAT, timeout=10).status_code
            ] += 1

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert codes == {200: 1, 429: 1}, (node.name, codes)

    bad = requests.put(mesh.nodes[1].url + "/admin/config", json={"queue_size": -1}, timeout=5)
    assert bad.status_code == 400 and "queue_size" in bad.json()["error"]["message"]
    unknown = requests.put(mesh.nodes[1].url + "/admin/config", json={"port": 1}, timeout=5)
    assert unknown.status_code == 400 and "not a runtime setting" in unknown.text
    assert requests.get(mesh.nodes[1].url + "/admin/config", timeout=5).json()["overrides"] == {
        "max_concurrent_requests": 1,
        "queue_size": 0,
    }


def test_circuit_breaker_reset_reaches_every_node(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mesh = Mesh(
        tmp_path,
        workers=2,
        extra=(
            "--cb-failure-threshold",
            "2",
            "--cb-timeout-duration-secs",
            "600",
            "--retry-initial-backoff-ms",
            "1",
            "--policy",
            "round_robin",
        ),
    )
    try:
        mesh.wait_ready()
        bad_url = mesh.worker_urls[0]
        requests.post(bad_url + "/_faults", json={"fail_status": 500}, timeout=5)
        bad_id = next(
            w["id"]
            for w in requests.get(mesh.nodes[0].url + "/workers", timeout=5).json()["workers"]
            if w["url"] == bad_url
        )

        def states() -> dict[str, str]:
            return {
                n.name: next(
                    w
                    for w in requests.get(n.url + "/workers", timeout=5).json()["workers"]
                    if w["id"] == bad_id
                )["circuit_breaker"]["state"]
                for n in mesh.nodes
            }

        for node in mesh.nodes:
            for _ in range(6):
                requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert set(states().values()) == {"open"}
        seen = requests.get(mesh.nodes[0].url + "/admin/circuit-breaker", timeout=5).json()
        assert seen["nodes"]["n1"][bad_id]["state"] == "open"

        requests.post(bad_url + "/_faults", json={"fail_status": None}, timeout=5)
        reset = requests.post(
            mesh.nodes[1].url + "/admin/circuit-breaker/reset",
            json={"worker_id": bad_id},
            timeout=5,
        )
        assert reset.status_code == 200, reset.text
        wait_for(lambda: set(states().values()) == {"closed"}, what="closed on every node")
        missing = requests.post(
            mesh.nodes[1].url + "/admin/circuit-breaker/reset",
            json={"worker_id": "nope"},
            timeout=5,
        )
        assert missing.status_code == 404
    finally:
        mesh.stop()
