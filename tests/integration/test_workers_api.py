"""Worker lifecycle by UUID, and control state that survives SIGKILL."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import Node, free_port, wait_for

MODEL = "echo-model"


def _status(node_url: str, worker_id: str) -> str:
    return requests.get(f"{node_url}/workers/{worker_id}", timeout=5).json()["status"]


@pytest.fixture(scope="module")
def node(module_cluster: Cluster) -> Node:
    """One node, without flags, for the tests that only add workers of their own."""
    return module_cluster.node(ready=False)


def test_add_get_update_delete_by_uuid(cluster: Cluster, node: Node) -> None:
    _, worker_url = cluster.echo(model=MODEL)

    resp = requests.post(
        node.url + "/workers",
        timeout=5,
        json={
            "url": worker_url + "/",
            "worker_type": "regular",
            "runtime": "sglang",
            "labels": {"zone": "a"},
            "api_key": "worker-secret",
        },
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    worker_id = body["worker_id"]
    assert str(uuid.UUID(worker_id)) == worker_id
    assert resp.headers["Location"] == f"/workers/{worker_id}" == body["location"]
    assert body["status"] == "accepted" and body["url"] == worker_url and body["message"]

    wait_for(lambda: _status(node.url, worker_id) == "ready", what="discovery")
    record = requests.get(f"{node.url}/workers/{worker_id}", timeout=5).json()
    assert record["model_id"] == MODEL  # discovered from the worker
    assert record["priority"] == 50 and record["cost"] == 1.0
    assert record["connection_mode"] == "http" and record["job_status"]["state"] == "succeeded"
    assert "api_key" not in record and record["has_api_key"] is True
    assert "worker-secret" not in requests.get(node.url + "/workers", timeout=5).text

    listing = requests.get(node.url + "/workers", params={"model": MODEL}, timeout=5).json()
    assert listing["total"] == 1 and listing["workers"][0]["id"] == worker_id
    assert listing["stats"]["healthy_count"] == 1
    assert (
        requests.get(node.url + "/workers", params={"model": "other"}, timeout=5).json()["total"]
        == 0
    )

    dup = requests.post(node.url + "/workers", json={"url": worker_url}, timeout=5)
    assert dup.status_code == 409 and dup.json()["error"]["worker_id"] == worker_id
    shouted = "HTTP://" + worker_url.removeprefix("http://") + "/"  # the same backend
    dup = requests.post(node.url + "/workers", json={"url": shouted}, timeout=5)
    assert dup.status_code == 409 and dup.json()["error"]["worker_id"] == worker_id

    put = requests.put(f"{node.url}/workers/{worker_id}", json={"priority": 100}, timeout=5)
    assert put.status_code == 200 and put.json()["priority"] == 100
    patch = requests.patch(
        f"{node.url}/workers/{worker_id}", json={"cost": 2.5, "labels": {"zone": "b"}}, timeout=5
    )
    assert patch.json()["cost"] == 2.5 and patch.json()["labels"] == {"zone": "b"}
    assert patch.json()["priority"] == 100  # partial update keeps other fields
    stale = requests.put(
        f"{node.url}/workers/{worker_id}", json={"priority": 1, "expected_version": 1}, timeout=5
    )
    assert stale.status_code == 409

    drained = requests.post(f"{node.url}/workers/{worker_id}/drain", timeout=5)
    assert drained.status_code == 200 and drained.json()["status"] == "draining"
    assert drained.json()["job_status"]["message"] == "drain requested"
    listing = requests.get(node.url + "/workers", params={"model": MODEL}, timeout=5).json()
    assert listing["stats"]["healthy_count"] == 0  # listed, but no longer routed to
    again = requests.post(f"{node.url}/workers/{worker_id}/drain", timeout=5)
    assert again.status_code == 200 and again.json()["status"] == "draining"

    gone = requests.delete(f"{node.url}/workers/{worker_id}", timeout=10)
    assert gone.status_code == 200 and gone.json()["status"] == "deleted"
    assert gone.json()["drained"] is True
    missing = requests.get(f"{node.url}/workers/{worker_id}", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "WORKER_NOT_FOUND"
    # the URL is free again
    assert (
        requests.post(node.url + "/workers", json={"url": worker_url}, timeout=5).status_code == 202
    )


def test_smg_text_fields_are_kept_and_parser_names_checked(node: Node) -> None:
    fields = {
        "tokenizer_path": "/models/llama/tokenizer.json",
        "chat_template": "{{ messages[0].content }}",
        "reasoning_parser": "deepseek_r1",
        "tool_parser": "llama3",
    }
    url = f"http://127.0.0.1:{free_port()}"
    resp = requests.post(node.url + "/workers", json={"url": url, **fields}, timeout=5)
    assert resp.status_code == 202, resp.text
    worker_id = resp.json()["worker_id"]
    record = requests.get(f"{node.url}/workers/{worker_id}", timeout=5).json()
    assert {k: record[k] for k in fields} == fields

    unknown = requests.patch(
        f"{node.url}/workers/{worker_id}", json={"tool_parser": "nope"}, timeout=5
    )
    error = unknown.json()["error"]
    assert unknown.status_code == 400 and error["param"] == "tool_parser"
    assert "llama3" in error["message"] and "qwen25" in error["message"]
    unknown = requests.post(
        node.url + "/workers",
        json={"url": url.replace("127.0.0.1", "127.0.0.2"), "reasoning_parser": "x"},
        timeout=5,
    )
    assert unknown.status_code == 400 and "deepseek_r1" in unknown.json()["error"]["message"]
    too_long = requests.patch(
        f"{node.url}/workers/{worker_id}", json={"chat_template": "x" * 65537}, timeout=5
    )
    assert too_long.status_code == 400 and "chat_template" in too_long.text
    cleared = requests.patch(
        f"{node.url}/workers/{worker_id}", json={"tool_parser": None}, timeout=5
    )
    assert cleared.status_code == 200 and cleared.json()["tool_parser"] is None
    assert cleared.json()["reasoning_parser"] == "deepseek_r1"


def test_id_routes_share_one_resolver(node: Node) -> None:
    unknown = str(uuid.uuid4())
    for method in ("get", "put", "patch", "delete"):
        bad = requests.request(
            method, node.url + "/workers/not-a-uuid", json={"priority": 1}, timeout=5
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_REQUEST", method
        missing = requests.request(
            method, f"{node.url}/workers/{unknown}", json={"priority": 1}, timeout=5
        )
        assert missing.status_code == 404, method
        assert missing.json()["error"]["code"] == "WORKER_NOT_FOUND"


def test_unreachable_worker_fails_discovery(cluster: Cluster) -> None:
    node = cluster.node(
        "--worker-startup-timeout-secs", "1", "--worker-startup-check-interval", "0.2", ready=False
    )
    dead = f"http://127.0.0.1:{free_port()}"
    worker_id = requests.post(node.url + "/workers", json={"url": dead}, timeout=5).json()[
        "worker_id"
    ]
    wait_for(lambda: _status(node.url, worker_id) == "failed", what="failed discovery")
    job = requests.get(f"{node.url}/workers/{worker_id}", timeout=5).json()["job_status"]
    assert job["state"] == "failed" and "gave up" in job["message"]


def test_worker_survives_sigkill_and_worker_urls_keep_their_ids(cluster: Cluster) -> None:
    _, from_flag = cluster.echo(model=MODEL)
    _, from_api = cluster.echo(model="other-model")
    node = cluster.node("--worker-urls", from_flag)
    added = requests.post(
        node.url + "/workers", json={"url": from_api, "priority": 7}, timeout=5
    ).json()["worker_id"]
    wait_for(lambda: _status(node.url, added) == "ready", what="api worker ready")
    before = {
        w["url"]: w["id"] for w in requests.get(node.url + "/workers", timeout=5).json()["workers"]
    }

    node.proc.kill()  # SIGKILL: no chance to flush or say goodbye
    node.restart()
    node.wait_ready()

    after = requests.get(node.url + "/workers", timeout=5).json()["workers"]
    assert {w["url"]: w["id"] for w in after} == before
    assert next(w for w in after if w["id"] == added)["priority"] == 7
    chat = requests.post(
        node.url + "/v1/chat/completions",
        timeout=10,
        json={"model": "other-model", "messages": [{"role": "user", "content": "still there?"}]},
    )
    assert chat.status_code == 200 and chat.headers["x-meshgate-worker"] == added


def test_delete_drains_in_flight_streams(cluster: Cluster) -> None:
    _, worker_url = cluster.echo("--token-delay-ms", "100", model=MODEL)
    node = cluster.node("--worker-urls", worker_url)
    worker_id = requests.get(node.url + "/workers", timeout=5).json()["workers"][0]["id"]
    received: list[bytes] = []
    started = threading.Event()

    def stream() -> None:
        body = {
            "model": MODEL,
            "stream": True,
            "max_tokens": 15,
            "messages": [{"role": "user", "content": "a slow answer"}],
        }
        with requests.post(
            node.url + "/v1/chat/completions", json=body, stream=True, timeout=30
        ) as resp:
            for line in resp.iter_lines():
                started.set()
                if line:
                    received.append(line)

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(10)
    gone = requests.delete(f"{node.url}/workers/{worker_id}", timeout=30)
    reader.join(30)
    assert gone.status_code == 200 and gone.json()["drained"] is True
    assert received[-1] == b"data: [DONE]"  # the stream finished before removal
    assert requests.get(node.url + "/workers", timeout=5).json()["total"] == 0
