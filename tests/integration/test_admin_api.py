"""Admin API on one node: probes, /info, reload of the config file."""

from __future__ import annotations

import requests

from tests.integration.conftest import Cluster
from tests.support import strong

MODEL = "echo-model"
CLIENT_KEY = strong("client-secret-1")
ADMIN_KEY = strong("admin-secret-1")


def test_health_ready_and_info(cluster: Cluster) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        worker,
        "--api-key",
        CLIENT_KEY,
        "--control-plane-api-keys",
        f"a:ops:admin:{ADMIN_KEY}",
    )
    health = requests.get(node.url + "/health", timeout=5).json()
    assert health["status"] == "healthy" and health["version"] and health["uptime_seconds"] > 0
    ready = requests.get(node.url + "/health/ready", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["circuit_breaker"] == "closed"
    requests.post(
        node.url + "/v1/chat/completions",
        timeout=5,
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert requests.get(node.url + "/info", timeout=5).status_code == 401
    info = requests.get(
        node.url + "/info", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5
    ).json()
    assert info["metrics"]["total_requests"] == 1 and info["metrics"]["p50_latency_ms"] > 0
    text = str(info)
    assert CLIENT_KEY not in text and ADMIN_KEY not in text  # secrets masked
    assert info["config"]["api_key"] == "***"


def test_reload_applies_runtime_settings_from_the_file(cluster: Cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "meshgate.toml"
    config.write_text('queue_size = 100\npolicy = "round_robin"\n')
    node = cluster.node("--config", str(config), ready=False)
    no_file = cluster.node(name="node-2", ready=False)
    assert requests.post(no_file.url + "/admin/reload", timeout=5).status_code == 409

    config.write_text('queue_size = 7\npolicy = "least_load"\nport = 1\n')
    resp = requests.post(node.url + "/admin/reload", timeout=5)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["updated_fields"] == ["policy", "queue_size"]
    assert body["restart_required"] == ["port"]
    effective = requests.get(node.url + "/admin/config", timeout=5).json()["config"]
    assert effective["queue_size"] == 7 and effective["policy"] == "least_load"
    config.write_text("queue_size = -2\n")
    bad = requests.post(node.url + "/admin/reload", timeout=5)
    assert bad.status_code == 400
    assert requests.get(node.url + "/admin/config", timeout=5).json()["config"]["queue_size"] == 7
