"""Admission control: a bounded queue in front of a concurrency limit, 429 when it overflows."""

from __future__ import annotations

import threading
from collections import Counter

import requests

from tests.integration.conftest import Cluster
from tests.support import wait_for

MODEL = "echo-model"
CHAT = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
CPU_ROUTES = {
    "/v1/tokenize": {"model": MODEL, "prompt": "hi"},
    "/v1/detokenize": {"model": MODEL, "tokens": [1]},
    "/parse/function_call": {"text": "hi", "tool_call_parser": "qwen25"},
    "/parse/reasoning": {"text": "<think>a</think>b", "reasoning_parser": "qwen3"},
}


def _metric(url: str, name: str) -> float:
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_queue_overflow_gets_429_with_retry_after(cluster: Cluster) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        worker,
        "--max-concurrent-requests",
        "1",
        "--queue-size",
        "1",
        "--queue-timeout-secs",
        "30",
    )
    requests.post(worker + "/_faults", json={"latency_ms": 1500}, timeout=5)
    results: list[int] = []

    def call() -> None:
        results.append(
            requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=30).status_code
        )

    holders = [threading.Thread(target=call) for _ in range(2)]
    for thread in holders:
        thread.start()
    # one request holds the slot, the other waits in the queue: now the queue is full
    wait_for(lambda: _metric(node.url, "meshgate_admission_queue_depth") == 1, what="queue filled")
    refused = requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full"
    # The CPU-heavy utilities take a slot like inference does (review 38 finding 7).
    for path, body in CPU_ROUTES.items():
        refused = requests.post(node.url + path, json=body, timeout=10)
        assert refused.status_code == 429, (path, refused.text)
        assert refused.json()["error"]["code"] == "queue_full" and "Retry-After" in refused.headers
    for thread in holders:
        thread.join(30)
    assert Counter(results) == {200: 2}  # queued requests were served, not dropped
    reasoning = requests.post(
        node.url + "/parse/reasoning", json=CPU_ROUTES["/parse/reasoning"], timeout=10
    )
    assert reasoning.json() == {"normal_text": "b", "reasoning_text": "a"}  # slot given back
    assert _metric(node.url, "meshgate_admission_in_flight") == 0
    assert _metric(node.url, "meshgate_admission_rejected") >= 1


def test_queue_timeout_gets_429(cluster: Cluster) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        worker,
        "--max-concurrent-requests",
        "1",
        "--queue-size",
        "5",
        "--queue-timeout-secs",
        "0.3",
    )
    requests.post(worker + "/_faults", json={"latency_ms": 2000}, timeout=5)
    holder = threading.Thread(
        target=lambda: requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=30)
    )
    holder.start()
    wait_for(lambda: _metric(node.url, "meshgate_admission_in_flight") == 1, what="slot taken")
    late = requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10)
    holder.join(30)
    assert late.status_code == 429 and late.json()["error"]["code"] == "queue_timeout"
    assert _metric(node.url, "meshgate_admission_in_flight") == 0
