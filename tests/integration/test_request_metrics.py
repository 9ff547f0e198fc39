"""Request metrics count every inference entry, and a client that hangs up is a 499.

A deployment's `predict` and a published model's external paths go through
the same pipeline as the OpenAI routes, so `/metrics` counts them under their
own route. A client that closes a stream halfway is counted as 499 (client
closed request), in the metrics and in the audit log, never as a 5xx, and the
node says so at info level, not as an error.
"""

from __future__ import annotations

import socket
from typing import Any

import orjson
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Cluster
from tests.support import Node, strong, wait_for

MODEL = "echo-model"
ADMIN = strong("request-metrics-admin")
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
ADMIN_KEY = ("--control-plane-api-keys", f"ops:ops:admin:{ADMIN}")
MESSAGES = [{"role": "user", "content": "hi"}]
PREDICT = "/api/models/{name}/predict"
EXTERNAL = "/models/{name}/{tail}"


def requests_counted(node: Node) -> dict[tuple[str, str, str], float]:
    """`meshgate_requests_total` by (route, model, status)."""
    text = requests.get(node.url + "/metrics", timeout=5).text
    return {
        (s.labels["route"], s.labels["model"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "meshgate_requests_total"
    }


def deployment(node: Node) -> tuple[dict[str, str], dict[str, str]]:
    """A tenant's user key and a published deployment `assistant` of the echo model:
    the headers of the user key and of the publication's key."""
    requests.post(node.url + "/api/admin/tenants", json={"name": "shop"}, headers=AS_ADMIN)
    user = requests.post(
        node.url + "/api/keys", json={"namespace": "shop"}, headers=AS_ADMIN, timeout=5
    ).json()["apiKey"]
    as_user = {"Authorization": f"Bearer {user}"}
    model = {"name": "assistant", "modelId": MODEL}
    created = requests.post(node.url + "/api/models", json=model, headers=as_user, timeout=5)
    assert created.status_code == 201, created.text
    published = requests.post(
        node.url + "/api/models/assistant/publish?namespace=shop",
        json={"config": {}},
        headers=AS_ADMIN,
        timeout=5,
    )
    assert published.status_code == 201, published.text
    return as_user, {"X-API-Key": published.json()["publishedModel"]["apiKey"]}


def test_predict_and_published_paths_are_counted(cluster: Cluster) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", worker, *ADMIN_KEY)
    as_user, as_publication = deployment(node)
    body = {"messages": MESSAGES}

    predicted = requests.post(
        node.url + "/api/models/assistant/predict", json=body, headers=as_user, timeout=10
    )
    assert predicted.status_code == 200, predicted.text
    for tail in ("predict", "v1/chat/completions"):
        external = requests.post(
            f"{node.url}/models/assistant/{tail}", json=body, headers=as_publication, timeout=10
        )
        assert external.status_code == 200, external.text
    anonymous = requests.post(node.url + "/models/assistant/predict", json=body, timeout=10)
    assert anonymous.status_code == 401
    missing = requests.post(
        node.url + "/api/models/nobody/predict", json=body, headers=as_user, timeout=10
    )
    assert missing.status_code == 404

    counted = requests_counted(node)
    # Counted under the model the worker served: a tenant's deployment name is its own,
    # and /metrics answers anyone.
    assert counted.get((PREDICT, MODEL, "200")) == 1.0, counted
    assert counted.get((EXTERNAL, MODEL, "200")) == 2.0, counted
    assert "assistant" not in requests.get(node.url + "/metrics", timeout=5).text
    assert counted.get((EXTERNAL, "none", "401")) == 1.0, counted
    assert counted.get((PREDICT, "none", "404")) == 1.0, counted
    latency = requests.get(node.url + "/metrics", timeout=5).text
    assert f'meshgate_request_duration_seconds_count{{node="node-1",route="{PREDICT}"}} 2.0' in (
        latency
    )


def hang_up_mid_stream(
    node: Node, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    """Open a stream, read until its first event arrives, then close the connection."""
    raw = orjson.dumps(body)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{head}Content-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        received = b""
        while b"data:" not in received:
            chunk = conn.recv(4096)
            assert chunk, f"the stream ended before its first event: {received!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received


def test_a_client_that_closes_a_stream_mid_way_is_counted_499(cluster: Cluster) -> None:
    # Slow tokens: the stream is still running when the client hangs up.
    _, worker = cluster.echo("--token-delay-ms", "200", model=MODEL)
    node = cluster.node("--worker-urls", worker, *ADMIN_KEY)
    as_user, _ = deployment(node)
    stream = {"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": 200}

    hang_up_mid_stream(node, "/v1/chat/completions", stream, AS_ADMIN)
    hang_up_mid_stream(node, "/api/models/assistant/predict", stream, as_user)

    def counted_499() -> dict[tuple[str, str, str], float]:
        counted = requests_counted(node)
        chat = counted.get(("/v1/chat/completions", MODEL, "499"))
        predict = counted.get((PREDICT, MODEL, "499"))  # the model its worker serves
        return counted if chat == 1.0 and predict == 1.0 else {}

    counted = wait_for(counted_499, timeout=15, what="both hang-ups counted as 499")
    assert not [labels for labels in counted if labels[2].startswith("5")], counted

    def audited() -> list[dict[str, Any]]:
        entries = requests.get(
            node.url + "/api/admin/audit?kind=refusals", headers=AS_ADMIN, timeout=5
        ).json()["entries"]
        return [e for e in entries if e["path"] == "/api/models/assistant/predict"]

    (entry,) = wait_for(audited, timeout=10, what="the hung-up predict in the audit log")
    assert entry["status"] == 499 and entry["result"] == "client_closed"
    log = node.proc.log()
    assert "client closed POST /v1/chat/completions" in log
    assert "client closed POST /api/models/assistant/predict" in log
    assert "Error handling request" not in log and "unhandled error" not in log
