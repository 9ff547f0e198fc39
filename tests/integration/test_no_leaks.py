"""A node that leaks nothing: errors, worker URLs with credentials, worker keys at rest.

Each test runs the attack against real processes: a worker that cuts its
stream or is gone, a worker registered as `http://user:password@host`, a worker
key that must never reach the disk in the clear, clients that leave and attempts
that time out (no socket left open).
"""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import orjson
import requests

from node.proxy.failures import STREAM_BROKE
from tests.integration.conftest import Cluster
from tests.support import free_port, wait_for

MODEL = "echo-model"
CHAT = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
# What exception text looks like; none of it may reach a client.
INTERNALS = (
    "ClientPayloadError",
    "TransferEncoding",
    "ClientConnectorError",
    "Errno",
    "Connect call",
)


def _events(resp: requests.Response) -> list[tuple[str | None, dict]]:
    """(event name, data) of each SSE event with a JSON body."""
    events, name = [], None
    for line in resp.iter_lines():
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: {"):
            events.append((name, orjson.loads(line[6:])))
            name = None
    return events


def _stream(url: str, path: str, body: dict) -> list[tuple[str | None, dict]]:
    with requests.post(url + path, json={**body, "stream": True}, stream=True, timeout=15) as resp:
        assert resp.status_code == 200
        return _events(resp)


def test_a_stream_cut_midway_ends_with_a_fixed_phrase_in_each_api_s_shape(
    cluster: Cluster,
) -> None:
    _, worker = cluster.echo("--cut-stream-after", "3", model=MODEL)
    node = cluster.node("--worker-urls", worker, "--health-check-interval-secs", "60")

    name, data = _stream(node.url, "/v1/chat/completions", CHAT)[-1]
    assert name == "error"
    assert data["error"]["code"] == "stream_interrupted"
    assert data["error"]["message"] == STREAM_BROKE

    name, data = _stream(node.url, "/v1/messages", CHAT)[-1]
    assert name == "error"
    assert data == {"type": "error", "error": {"type": "api_error", "message": STREAM_BROKE}}
    # the operator still gets the detail, in the node's log
    assert "CutOff: the connection closed before the answer ended" in node.proc.log()


def test_a_worker_that_is_gone_is_told_as_a_category_on_every_route(cluster: Cluster) -> None:
    echo, worker = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", worker, "--health-check-interval-secs", "60")
    echo.kill()  # health checks are far apart: the node still routes to it

    answers = {
        "chat": requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=15),
        "health_generate": requests.get(node.url + "/health_generate", timeout=15),
        "model_info": requests.get(node.url + "/get_model_info", timeout=15),
        "server_info": requests.get(node.url + "/get_server_info", timeout=15),
        "loads": requests.get(node.url + "/get_loads", timeout=15),
        "flush": requests.post(node.url + "/flush_cache", timeout=15),
    }
    assert answers["chat"].status_code == 503
    assert "did not answer: connection refused" in answers["chat"].json()["error"]["message"]
    assert answers["health_generate"].json()["reason"] == "did not answer: connection refused"
    assert answers["model_info"].status_code == 502
    for what, resp in answers.items():
        assert "connection refused" in resp.text, what
        for internal in INTERNALS:
            assert internal not in resp.text, (what, resp.text)

    # discovery of a worker that is not there says so the same way
    gone = f"http://127.0.0.1:{free_port()}"
    added = requests.post(node.url + "/workers", json={"url": gone}, timeout=10).json()

    def job_message() -> str:
        worker_id = added["worker_id"]
        view = requests.get(f"{node.url}/workers/{worker_id}", timeout=5).json()
        message = view["job_status"]["message"]
        return message if "last error: GET /health" in message else ""

    message = wait_for(job_message, what="discovery tried the worker")
    assert "GET /health did not answer: connection refused" in message
    assert not any(internal in message for internal in INTERNALS)


def _surfaces(url: str, worker_ids: list[str]) -> dict[str, str]:
    """Every route that shows something about workers, and what it shows."""
    get = {
        "metrics": "/metrics",
        "server_info": "/get_server_info",
        "model_info": "/get_model_info",
        "engine_metrics": "/engine_metrics",
        "workers": "/workers",
        "ha_workers": "/ha/workers",
        "ha_status": "/ha/status",
        "info": "/info",
        "loads": "/get_loads",
        "breakers": "/admin/circuit-breaker",
        "audit": "/api/admin/audit",
        "models": "/v1/models",
    }
    for worker_id in worker_ids:
        get[f"worker {worker_id}"] = f"/workers/{worker_id}"
        get[f"ha worker {worker_id}"] = f"/ha/workers/{worker_id}"
    shown = {name: requests.get(url + path, timeout=10).text for name, path in get.items()}
    shown["flush"] = requests.post(url + "/flush_cache", timeout=10).text
    return shown


def test_credentials_in_worker_urls_are_never_shown(cluster: Cluster) -> None:
    alice, bob = "alice-pw-1b7e0c55f4", "bob-pw-9d31a7e2c8"
    _, first = cluster.echo("--basic-auth", f"alice:{alice}", model="model-a")
    second_echo, second = cluster.echo("--basic-auth", f"bob:{bob}", model="model-b")
    with_userinfo = first.replace("http://", f"http://alice:{alice}@")
    node = cluster.node(
        "--worker-urls", with_userinfo, "--health-check-interval-secs", "60", ready=True
    )
    registered = requests.post(
        node.url + "/workers",
        json={"url": second.replace("http://", f"http://bob:{bob}@")},
        timeout=10,
    )
    assert registered.status_code == 202 and bob not in registered.text
    worker_b = registered.json()["worker_id"]
    # the same worker without its userinfo is the same worker
    again = requests.post(node.url + "/workers", json={"url": second}, timeout=10)
    assert again.status_code == 409 and again.json()["error"]["worker_id"] == worker_b
    both = requests.post(
        node.url + "/workers",
        json={"url": f"http://carol:pw@127.0.0.1:{free_port()}", "api_key": "k"},
        timeout=10,
    )
    assert both.status_code == 400 and both.json()["error"]["param"] == "api_key"

    # discovery and requests reach both workers with their credentials (HTTP Basic)
    def models() -> set[str]:
        return {m["id"] for m in requests.get(node.url + "/v1/models", timeout=5).json()["data"]}

    wait_for(lambda: models() == {"model-a", "model-b"}, what="both workers discovered")
    for model in ("model-a", "model-b"):
        chat = requests.post(
            node.url + "/v1/chat/completions", json={**CHAT, "model": model}, timeout=10
        )
        assert chat.status_code == 200, chat.text
    ids = [w["id"] for w in requests.get(node.url + "/workers", timeout=5).json()["workers"]]
    assert {w["url"] for w in requests.get(node.url + "/workers", timeout=5).json()["workers"]} == {
        first,
        second,
    }

    second_echo.kill()  # error messages, too
    failed = requests.post(
        node.url + "/v1/chat/completions", json={**CHAT, "model": "model-b"}, timeout=15
    )
    assert failed.status_code == 503
    shown = {**_surfaces(node.url, ids), "error": failed.text, "registered": registered.text}
    for name, text in shown.items():
        assert alice not in text and bob not in text, name
    assert "alice" not in shown["info"]  # --worker-urls as /info shows the config
    assert alice not in node.proc.log() and bob not in node.proc.log()
    for path in node.data_dir.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert alice.encode() not in raw and bob.encode() not in raw, path


def _files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}


def test_worker_api_keys_are_sealed_in_the_journal_and_snapshots(cluster: Cluster) -> None:
    key = "sk-worker-3f9a0d17b2c4e6a8"
    _, worker = cluster.echo("--api-key", key, model=MODEL)
    node = cluster.node(
        "--mesh-log-compaction-entries", "10", "--mesh-log-compaction-secs", "1", ready=False
    )
    added = requests.post(node.url + "/workers", json={"url": worker, "api_key": key}, timeout=10)
    assert added.status_code == 202
    node.wait_ready()
    assert (
        requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
    )
    journal = _files(node.data_dir)["raft.journal"]
    assert b"sealed:v1:" in journal and key.encode() not in journal  # the command, sealed
    # enough commands for a snapshot (pickled, gzipped), which then holds the record
    for i in range(20):
        requests.post(node.url + "/ha/config", json={"key": f"k{i}", "value": i}, timeout=5)
    wait_for(lambda: "raft.dump" in _files(node.data_dir), what="a snapshot written")
    files = _files(node.data_dir)
    snapshot = gzip.decompress(files["raft.dump"])
    assert b"sealed:v1:" in snapshot
    for name, raw in {**files, "snapshot": snapshot}.items():
        assert key.encode() not in raw, name
    assert key not in node.proc.log()

    node.proc.stop()  # the data dir's mesh secret opens it again after a restart
    node.restart()
    node.wait_ready()
    assert (
        requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
    )
    assert key not in requests.get(node.url + "/workers", timeout=5).text
    # The engine lists its key in its server info (as SGLang does); public routes relay none.
    for path in ("/get_server_info", f"/get_model_info?model={MODEL}"):
        resp = requests.get(node.url + path, timeout=10)
        assert resp.status_code == 200 and key not in resp.text, (path, resp.text)


def test_a_refused_worker_url_is_not_repeated_in_the_error(cluster: Cluster) -> None:
    node = cluster.node(ready=False)
    for url in ("user:topsecretpw@10.0.0.5:8000", "ftp://user:topsecretpw@10.0.0.5/"):
        resp = requests.post(node.url + "/workers", json={"url": url}, timeout=10)
        assert resp.status_code == 400 and "topsecretpw" not in resp.text, resp.text
    assert "topsecretpw" not in node.proc.log()


def test_clients_that_leave_and_attempts_that_time_out_leave_no_socket_open(
    cluster: Cluster,
) -> None:
    """Every way an attempt on a worker ends early closes its connection (none is pooled
    with an answer in flight) and settles the worker's load: the node's open files are
    back to what they were."""
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls", worker, "--health-check-interval-secs", "60",
        "--request-timeout-secs", "1", "--retry-max-retries", "1",
    )  # fmt: skip
    fds = Path(f"/proc/{node.proc.pid}/fd")
    host, port = node.url.removeprefix("http://").split(":")
    chat = orjson.dumps({**CHAT, "stream": True})

    def sent() -> socket.socket:
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
            b"Content-Type: application/json\r\n\r\n%s" % (host.encode(), len(chat), chat)
        )
        return sock

    def faults(**settings: int) -> None:
        requests.post(worker + "/_faults", json=settings, timeout=5).raise_for_status()

    def settled() -> bool:
        workers = requests.get(node.url + "/workers", timeout=5).json()["workers"]
        return [w["load"] for w in workers] == [0] and len(list(fds.iterdir())) <= before

    assert requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10).ok
    before = len(list(fds.iterdir()))  # one connection to the worker is pooled now
    faults(latency_ms=3000)
    waiting = [sent() for _ in range(3)]  # clients that leave before the answer starts
    wait_for(lambda: requests.get(worker + "/_stats", timeout=5).json()["in_flight"] == 3)
    for sock in waiting:
        sock.close()
    timed_out = requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10)
    assert timed_out.status_code == 503 and "timed out" in timed_out.text
    faults(latency_ms=0, token_delay_ms=100)
    for _ in range(3):  # clients that leave mid-stream
        with sent() as sock:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    wait_for(settled, what="every connection closed and the load settled")
