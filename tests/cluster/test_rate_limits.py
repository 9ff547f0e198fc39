"""A mesh-wide rate limit enforced by 3 nodes, with local shares and with a real Redis.

Bounds (docs/rate-limits.md): over T seconds the cluster admits at most
`rate*T + max(burst, N)` with local shares, and `rate*T + burst` with Redis.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.cluster.conftest import MODEL, Mesh
from tests.support import RedisServer, wait_for

CHAT = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
RATE, BURST = 20.0, 10.0


def test_global_limit_is_exact_with_redis_and_falls_back_without_it(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis.log")
    redis_server.start()
    # A healthy Redis must not look down on a busy 2-core CI machine: this test is about
    # exact counting, so it gives Redis time (the outage path has its own tests).
    mesh = Mesh(tmp_path, extra=("--redis-url", redis_server.url, "--redis-timeout-secs", "2"))
    try:
        mesh.wait_ready()
        assert all(
            requests.get(n.url + "/ha/rate-limit", timeout=5).json()["backend"] == "redis"
            for n in mesh.nodes
        )
        _set_limit(mesh, requests_per_second=RATE, burst=BURST)
        statuses, elapsed, _ = _hammer(mesh, 3.0)
        admitted = statuses[200]
        assert admitted <= RATE * elapsed + BURST + 1, (admitted, elapsed)
        assert admitted >= RATE * elapsed * 0.8, (admitted, elapsed)

        redis_server.kill()
        resp = requests.post(mesh.nodes[0].url + "/v1/chat/completions", json=CHAT, timeout=5)
        assert resp.status_code in (200, 429)  # answered from the local share, never a 5xx
        wait_for(
            lambda: "unreachable" in mesh.status(mesh.nodes[0])["rate_limit_backend"],
            what="/ha/status reports the Redis outage",
        )
        metrics = requests.get(mesh.nodes[0].url + "/metrics", timeout=5).text
        assert 'meshgate_rate_limit_redis_up{node="n1"} 0.0' in metrics
        statuses, elapsed, _ = _hammer(mesh, 2.0)
        assert set(statuses) <= {200, 429} and statuses[200] > 0
        assert statuses[200] <= RATE * elapsed + max(BURST, 3) + 3
    finally:
        mesh.stop()
        redis_server.kill()


@pytest.fixture(scope="module")
def mesh(module_mesh: Mesh) -> Mesh:
    """One mesh for the tests without Redis, below the one with it; each removes the rule it set."""
    return module_mesh


def _no_rules(mesh: Mesh) -> None:
    wait_for(
        lambda: all(
            requests.get(n.url + "/ha/rate-limit", timeout=5).json()["rules"] == []
            for n in mesh.nodes
        ),
        what="rule removed everywhere",
    )


def _set_limit(mesh: Mesh, **body: object) -> None:
    resp = requests.post(mesh.nodes[0].url + "/ha/rate-limit", json=body, timeout=5)
    assert resp.status_code == 200, resp.text
    for node in mesh.nodes:
        wait_for(
            lambda n=node: requests.get(n.url + "/ha/rate-limit", timeout=5).json()["rules"],
            what="rule replicated",
        )


def _hammer(mesh: Mesh, seconds: float) -> tuple[Counter[int], float, list[requests.Response]]:
    """Spread requests over all nodes from 6 threads; return status counts and elapsed time."""
    urls = itertools.cycle(mesh.urls)
    refused: list[requests.Response] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    def worker(_: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                resp = session.post(next(urls) + "/v1/chat/completions", json=CHAT, timeout=10)
                statuses[resp.status_code] += 1
                if resp.status_code == 429:
                    refused.append(resp)

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(worker, range(6)))
    return statuses, time.monotonic() - started, refused


def _wait_serving(mesh: Mesh, count: int) -> None:
    for node in mesh.nodes:
        wait_for(
            lambda n=node: (
                requests.get(n.url + "/ha/rate-limit", timeout=5).json()["serving_nodes"] == count
            ),
            what=f"{node.name} counts {count} serving nodes",
        )


def test_global_limit_holds_across_three_nodes_with_local_shares(mesh: Mesh) -> None:
    _wait_serving(mesh, 3)
    _set_limit(mesh, requests_per_second=RATE, burst=BURST)
    statuses, elapsed, refused = _hammer(mesh, 3.0)
    admitted = statuses[200]
    assert set(statuses) <= {200, 429}, statuses
    assert admitted <= RATE * elapsed + max(BURST, 3) + 3, (admitted, elapsed)
    assert admitted >= RATE * elapsed * 0.6, (admitted, elapsed)
    assert statuses[429] > 0
    sample = refused[0]
    assert int(sample.headers["Retry-After"]) >= 1
    assert sample.json()["error"]["code"] == "rate_limited"

    def total() -> dict:
        stats = requests.get(mesh.nodes[1].url + "/ha/rate-limit/stats", timeout=5).json()
        return stats["scopes"]["*"]  # type: ignore[no-any-return]

    # peers' counters arrive with the next poll (each second): every node's, added up
    wait_for(lambda: total()["admitted"] == admitted, timeout=5, what="aggregated counters")
    total = total()
    assert set(total["by_node"]) == {"n1", "n2", "n3"}
    assert abs(sum(n["share_of_admitted"] for n in total["by_node"].values()) - 1) < 0.01
    cleared = requests.post(
        mesh.nodes[0].url + "/ha/rate-limit", json={"requests_per_second": None}, timeout=5
    )
    assert cleared.status_code == 200, cleared.text
    _no_rules(mesh)  # for the module's next test


def test_model_limit_and_removal(mesh: Mesh) -> None:
    _set_limit(mesh, model=MODEL, requests_per_second=1, burst=1)
    codes = [
        requests.post(mesh.nodes[0].url + "/v1/chat/completions", json=CHAT, timeout=5).status_code
        for _ in range(5)
    ]
    assert codes.count(429) >= 3
    refusal = requests.post(mesh.nodes[0].url + "/v1/chat/completions", json=CHAT, timeout=5)
    assert MODEL in refusal.json()["error"]["message"]
    resp = requests.post(
        mesh.nodes[2].url + "/ha/rate-limit",
        json={"model": MODEL, "requests_per_second": None},
        timeout=5,
    )
    assert resp.status_code == 200
    _no_rules(mesh)
    assert all(
        requests.post(mesh.nodes[0].url + "/v1/chat/completions", json=CHAT, timeout=5).status_code
        == 200
        for _ in range(5)
    )
