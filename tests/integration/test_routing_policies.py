"""Each routing policy's distribution, observed through a real node and three echo workers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import wait_for

MODEL = "echo-model"


@pytest.fixture(scope="module")
def gateway(module_cluster: Cluster) -> Iterator[str]:
    urls = [module_cluster.echo("--latency-ms", "20", model=MODEL)[1] for _ in range(3)]
    node = module_cluster.node("--worker-urls", *urls)
    wait_for(
        lambda: (
            requests.get(node.url + "/workers", timeout=5).json()["stats"]["healthy_count"] == 3
        ),
        what="three ready workers",
    )
    yield node.url


def _use(gateway: str, policy: str, **params: object) -> None:
    resp = requests.put(
        f"{gateway}/policies/{MODEL}", json={"policy": policy, "params": params}, timeout=5
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["policy"] == policy


def _served_by(
    gateway: str,
    content: str = "hello",
    headers: dict[str, str] | None = None,
    user: str | None = None,
) -> str:
    body: dict[str, object] = {
        "model": MODEL,
        "max_tokens": 2,
        "messages": [{"role": "user", "content": content}],
    }
    if user:
        body["user"] = user
    resp = requests.post(gateway + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-meshgate-worker"]


def test_round_robin_rotates_exactly(gateway: str) -> None:
    _use(gateway, "round_robin")
    picks = [_served_by(gateway) for _ in range(9)]
    assert Counter(picks).most_common() == [(w, 3) for w in dict.fromkeys(picks)]
    assert picks[:3] == picks[3:6] == picks[6:]


def test_random_reaches_every_worker(gateway: str) -> None:
    _use(gateway, "random")
    counts = Counter(_served_by(gateway) for _ in range(60))
    assert len(counts) == 3 and min(counts.values()) >= 5


def test_consistent_hashing_sticks_per_session(gateway: str) -> None:
    _use(gateway, "consistent_hashing")
    owners = {}
    for session in (f"session-{i}" for i in range(12)):
        picks = {_served_by(gateway, headers={"x-session-id": session}) for _ in range(3)}
        assert len(picks) == 1, session
        owners[session] = picks.pop()
    assert len(set(owners.values())) >= 2  # sessions spread over workers
    # the body's `user` is a routing key too
    assert len({_served_by(gateway, user="alice") for _ in range(4)}) == 1


def test_prefix_hash_sticks_per_prompt_prefix(gateway: str) -> None:
    _use(gateway, "prefix_hash", prefix_chars=24)
    prefixes = [f"tenant {i:02d}: the shared system prompt" for i in range(10)]
    owners = {}
    for prefix in prefixes:
        picks = {_served_by(gateway, prefix + suffix) for suffix in ("a", "bb", "ccc")}
        assert len(picks) == 1, prefix
        owners[prefix] = picks.pop()
    assert len(set(owners.values())) >= 2


def test_cache_aware_reuses_the_worker_that_saw_the_prompt(gateway: str) -> None:
    _use(gateway, "cache_aware")
    long_prompt = "You are a helpful assistant. " * 20
    first = _served_by(gateway, long_prompt + "question one")
    assert all(_served_by(gateway, long_prompt + f"question {i}") == first for i in range(6))


@pytest.mark.parametrize("policy", ["least_load", "power_of_two"])
def test_load_aware_policies_spread_concurrent_requests(gateway: str, policy: str) -> None:
    _use(gateway, policy)
    with ThreadPoolExecutor(12) as pool:
        picks = list(pool.map(lambda i: _served_by(gateway, f"p{i}"), range(48)))
    counts = Counter(picks)
    assert len(counts) == 3, counts
    assert max(counts.values()) <= 30, counts


def test_bad_policy_writes_are_refused(gateway: str) -> None:
    for body in (
        {"policy": "fastest"},
        {"policy": "cache_aware", "params": {"cache_threshold": 2}},
        {"policy": "round_robin", "params": {"bogus": 1}},
        {"params": {}},
    ):
        resp = requests.put(f"{gateway}/policies/{MODEL}", json=body, timeout=5)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["message"]
    listed = requests.get(gateway + "/policies", timeout=5).json()
    assert [p["model_id"] for p in listed["policies"]] == [MODEL]
    assert requests.delete(f"{gateway}/policies/{MODEL}", timeout=5).status_code == 200
    assert requests.get(f"{gateway}/policies/{MODEL}", timeout=5).status_code == 404
