"""What anyone who can reach a node may try, run for real: metric junk, audit floods, browsers.

- random model names must not grow `/metrics` without bound;
- a flood of refused, unauthenticated writes must not rotate the record of
  accepted changes out of the audit log;
- a node with no credentials (loopback development, the demo) must refuse
  cross-site pages (CSRF) and foreign host names (DNS rebinding).
"""

from __future__ import annotations

import uuid

import requests

from node.audit import MAX_REFUSAL_BYTES
from tests.integration.conftest import Cluster
from tests.support import free_port, strong

MODEL = "echo-model"
CHAT = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
ADMIN = strong("abuse-admin")


def _request_series(metrics: str) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith("meshgate_requests_total{")]


def test_random_model_names_add_no_metric_series(cluster: Cluster) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", worker)
    # a worker whose model is not known (it never answers): it would take any model name
    requests.post(node.url + "/workers", json={"url": f"http://127.0.0.1:{free_port()}"})
    with requests.Session() as session:
        for _ in range(100):  # any one unknown name would add a series
            junk = {**CHAT, "model": f"junk-{uuid.uuid4().hex}"}
            answer = session.post(node.url + "/v1/chat/completions", json=junk, timeout=10)
            assert answer.status_code in (404, 503)
        assert session.post(node.url + "/v1/chat/completions", json=CHAT).status_code == 200
    metrics = requests.get(node.url + "/metrics", timeout=5).text
    series = _request_series(metrics)
    assert len(series) <= 4, series
    assert any('model="unknown"' in line for line in series)
    assert any(f'model="{MODEL}"' in line for line in series)
    assert "junk-" not in metrics


def test_a_flood_of_refusals_never_rotates_accepted_changes_away(cluster: Cluster) -> None:
    node = cluster.node("--control-plane-api-keys", f"ops:ops:admin:{ADMIN}", ready=False)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    kept = requests.post(
        node.url + "/ha/config", json={"key": "before-the-flood", "value": 1}, headers=admin
    )
    assert kept.status_code == 200
    # entries as big as an attacker can make them (the path is logged), past twice the bound
    key = "x" * 1500
    with requests.Session() as session:
        for i in range((2 * MAX_REFUSAL_BYTES) // 1700 + 50):
            wrong = {"Authorization": f"Bearer wrong-{i}"}
            refused = session.delete(f"{node.url}/ha/config/{key}", headers=wrong)
            assert refused.status_code == 401
        assert session.post(f"{node.url}/workers/{key}/nope").status_code == 404  # no route
    changes = requests.get(node.url + "/api/admin/audit?limit=10000", headers=admin).json()
    assert ("POST", "/ha/config", 200) in {
        (e["method"], e["path"], e["status"]) for e in changes["entries"]
    }
    refusals = requests.get(
        node.url + "/api/admin/audit?kind=refusals&limit=10", headers=admin
    ).json()["entries"]
    assert len(refusals) == 10 and {e["status"] for e in refusals} == {401, 404}
    files = {p.name: p.stat().st_size for p in node.data_dir.glob("audit*")}
    assert files["audit-refused.jsonl.1"] <= MAX_REFUSAL_BYTES + 4096  # bounded: it rotated
    assert files["audit.jsonl"] < 64 * 1024  # the changes' log saw none of the flood
    bad = requests.get(node.url + "/api/admin/audit?kind=everything", headers=admin)
    assert bad.status_code == 400


def test_a_node_without_credentials_refuses_cross_site_pages_and_foreign_hosts(
    cluster: Cluster,
) -> None:
    node = cluster.node("--cors-origins", "https://console.example", ready=False)
    write = {"key": "csrf", "value": 1}
    for evil in ("https://evil.example", "https://console.example.evil.com"):
        cross_site = requests.post(node.url + "/ha/config", json=write, headers={"Origin": evil})
        assert cross_site.status_code == 403
        assert cross_site.json()["error"]["code"] == "CROSS_SITE_REQUEST"
    rebound = requests.get(node.url + "/workers", headers={"Host": "evil.example:30000"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "HOST_NOT_ALLOWED"
    null_origin = requests.post(node.url + "/ha/config", json=write, headers={"Origin": "null"})
    assert null_origin.status_code == 403
    assert requests.get(node.url + "/ha/config/csrf", timeout=5).status_code == 404  # nothing

    port = node.url.rsplit(":", 1)[1]
    for host, origin in (
        (f"127.0.0.1:{port}", node.url),
        (f"localhost:{port}", f"http://localhost:{port}"),
        (f"[::1]:{port}", "http://[::1]:5173"),
        ("127.9.9.9", None),
    ):
        headers = {"Host": host, **({"Origin": origin} if origin else {})}
        allowed = requests.get(node.url + "/workers", headers=headers, timeout=5)
        assert allowed.status_code == 200, (host, allowed.text)
    # The operator trusted a console on another origin with this node (docs/security.md).
    listed = requests.get(node.url + "/workers", headers={"Origin": "https://console.example"})
    assert listed.status_code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert requests.post(node.url + "/ha/config", json=write, timeout=5).status_code == 200


def test_a_node_with_credentials_is_not_limited_to_loopback_callers(cluster: Cluster) -> None:
    node = cluster.node("--control-plane-api-keys", f"ops:ops:admin:{ADMIN}", ready=False)
    headers = {
        "Authorization": f"Bearer {ADMIN}",
        "Origin": "https://console.example",
        "Host": "gateway.example",
    }
    assert requests.get(node.url + "/workers", headers=headers, timeout=5).status_code == 200
