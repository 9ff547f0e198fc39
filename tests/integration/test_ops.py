"""Operations routes: metrics, flush_cache fan-out, loads, engine metrics, model and server info."""

from __future__ import annotations

import requests

from tests.integration.conftest import Cluster

MODEL = "echo-model"


def test_ops_routes(cluster: Cluster) -> None:
    w1, u1 = cluster.echo(model=MODEL)
    _, u2 = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", u1, u2)
    requests.post(
        node.url + "/v1/chat/completions",
        timeout=10,
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )

    metrics = requests.get(node.url + "/metrics", timeout=5).text
    for name in (
        "meshgate_requests_total",
        "meshgate_request_duration_seconds_bucket",
        "meshgate_time_to_first_token_seconds_bucket",
        "meshgate_worker_healthy",
        "meshgate_circuit_breaker_state",
        "meshgate_admission_queue_depth",
        "meshgate_raft_applied_index",
        "meshgate_raft_is_leader",
    ):
        assert name in metrics, name
    assert (
        'meshgate_requests_total{model="echo-model",node="node-1",'
        'route="/v1/chat/completions",status="200"} 1.0'
    ) in metrics

    flushed = requests.post(node.url + "/flush_cache", timeout=10)
    assert flushed.status_code == 200 and flushed.json()["successful"] == 2

    loads = requests.get(node.url + "/get_loads", timeout=10).json()
    assert len(loads["workers"]) == 2 and all(w["load"] is not None for w in loads["workers"])

    engine = requests.get(node.url + "/engine_metrics", timeout=10).text
    ids = [w["id"] for w in requests.get(node.url + "/workers", timeout=5).json()["workers"]]
    assert all(f'worker="{i}"' in engine for i in ids)

    info = requests.get(node.url + "/get_model_info", timeout=10).json()
    assert info["served_model_name"] == MODEL
    server = requests.get(node.url + "/get_server_info", timeout=10).json()
    assert server["gateway"]["node"] == "node-1" and len(server["workers"]) == 2
    assert requests.get(node.url + "/health_generate", timeout=10).status_code == 200
    health = requests.get(node.url + "/health", timeout=10).json()
    assert health["status"] == "healthy" and health["workers"] == {"total": 2, "healthy": 2}

    w1.kill()  # one worker gone: the fan-out reports it instead of hiding it
    partial = requests.post(node.url + "/flush_cache", timeout=15)
    assert partial.status_code == 206
    body = partial.json()
    assert body["failed"] == 1 and body["successful"] == 1
    failed = next(r for r in body["results"] if not r["success"])
    assert failed["url"] == u1 and failed["error"]
