"""A real node's answers on its inference routes, written by the front (node/front/) and by
aiohttp alone: the same status, headers and body, for every stage that can answer (a
WASM OnResponse module's edits included).

Each request goes twice on a connection of its own: once plainly, which the front serves,
and once with its body chunked, which the front hands to aiohttp's protocol. Only Date,
and what the echo worker makes afresh per request, may differ."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass
from typing import Any

import httptools
import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import strong, wait_for
from tests.wasm_components import SEEN_HEADER, module_bytes

CLIENT_KEY = strong("front-client")
ADMIN_KEY = strong("front-admin")
ORIGIN = "http://app.example"
# What the echo worker makes afresh for each request.
FRESH = {"id", "created", "system_fingerprint"}


class Answer:
    """One answer read from a socket, parsed as a client would (Date left out)."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.done = False
        self.status = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() != b"date":
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


def exchange(port: int, data: bytes) -> tuple[Answer, bool]:
    """`data` sent on a fresh connection; its answer, and whether the node said it closes
    the connection and did."""
    got = Answer()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        while not got.done:
            chunk = sock.recv(65536)
            assert chunk, "the node closed before its answer ended"
            got.parser.feed_data(chunk)
        # A node that says it closes must close (one that keeps it is not waited for).
        closed = ("Connection", "close") in got.headers and sock.recv(1) == b""
    return got, closed


def plain_and_chunked(path: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, bytes]:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}"
    plain = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    chunked = (
        f"{head}Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    return plain, chunked


def comparable(answer: Answer) -> dict[str, Any]:
    body: Any = answer.body
    if answer.headers and any(
        k.lower() == "content-type" and v.startswith("application/json") for k, v in answer.headers
    ):
        body = without_fresh(json.loads(body))
    return {"status": answer.status, "headers": answer.headers, "body": body}


def without_fresh(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_fresh(v) for k, v in data.items() if k not in FRESH}
    if isinstance(data, list):
        return [without_fresh(v) for v in data]
    return data


@dataclass(frozen=True)
class Mesh:
    node: str
    worker: str

    @property
    def port(self) -> int:
        return int(self.node.rsplit(":", 1)[1])

    def faults(self, **faults: Any) -> None:
        """The echo worker's faults (null: none)."""
        made = requests.post(self.worker + "/_faults", json=faults, timeout=10)
        assert made.status_code == 200, made.text


@pytest.fixture(scope="module")
def mesh(module_cluster: Cluster) -> Mesh:
    _, worker = module_cluster.echo(model="m1")
    flags = {
        "--api-key": CLIENT_KEY,
        "--control-plane-api-keys": f"a:ops:admin:{ADMIN_KEY}",
        "--cors-origins": ORIGIN,
        # One attempt per request (no backoff to wait for, no breaker opened by the
        # faults' few failures) and one at a time (an admission refusal to provoke).
        "--retry-max-retries": "1",
        "--max-concurrent-requests": "1",
        "--queue-size": "0",
        "--min-index-wait-secs": "0.05",  # a node behind the index asked for says so soon
        "--enable-wasm": "true",
    }
    node = module_cluster.node("--worker-urls", worker, *(p for kv in flags.items() for p in kv))
    return Mesh(node.url, worker)


AUTH = {"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"}
CHAT = json.dumps({"model": "m1", "messages": [{"role": "user", "content": "hi"}]}).encode()

# name: (path, body, headers, status expected of both)
CASES: dict[str, tuple[str, bytes, dict[str, str], int]] = {
    "no key": ("/v1/chat/completions", CHAT, {"Content-Type": "application/json"}, 401),
    "a wrong key": ("/v1/chat/completions", CHAT, {"Authorization": "Bearer nope"}, 401),
    "an unknown model": (
        "/v1/chat/completions",
        CHAT.replace(b'"m1"', b'"m9"'),
        AUTH,
        404,
    ),
    "bad JSON": ("/v1/chat/completions", b"{not json", AUTH, 400),
    "an answer": ("/v1/chat/completions", CHAT, {**AUTH, "X-Request-Id": "rid-1"}, 200),
    "a completion": (
        "/v1/completions",
        json.dumps({"model": "m1", "prompt": "hi"}).encode(),
        {**AUTH, "X-Request-Id": "rid-2"},
        200,
    ),
    "an embedding": (
        "/v1/embeddings",
        json.dumps({"model": "m1", "input": "hi"}).encode(),
        {**AUTH, "X-Request-Id": "rid-6"},
        200,
    ),
    "a generation": (
        "/generate",
        json.dumps({"model": "m1", "text": "hi"}).encode(),
        {**AUTH, "X-Request-Id": "rid-7"},
        200,
    ),
    **{
        f"{path}, refused or not understood": (path, b"[1,", {**AUTH, "X-Request-Id": path}, 400)
        for path in ("/v1/messages", "/v1/rerank", "/rerank", "/v1/classify", "/v1/responses")
    },
    "a malformed min index": (
        "/v1/chat/completions",
        CHAT,
        {**AUTH, "X-Meshgate-Min-Index": "-1"},
        400,
    ),
    "a min index not reached": (
        "/v1/chat/completions",
        CHAT,
        {**AUTH, "X-Meshgate-Min-Index": "999999999"},
        503,
    ),
    "an answer that closes": (
        "/v1/chat/completions",
        CHAT,
        {**AUTH, "X-Request-Id": "rid-3", "Connection": "close"},
        200,
    ),
    "a browser's request": (
        "/v1/chat/completions",
        CHAT,
        {**AUTH, "X-Request-Id": "rid-4", "Origin": ORIGIN},
        200,
    ),
    "a browser's refused request": (
        "/v1/chat/completions",
        CHAT,
        {"Origin": ORIGIN, "Content-Type": "application/json"},
        401,
    ),
    "an unlisted origin": (
        "/v1/chat/completions",
        CHAT,
        {**AUTH, "X-Request-Id": "rid-5", "Origin": "http://evil.example"},
        200,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_front_answers_a_real_node_s_requests_as_aiohttp_does(mesh: Mesh, case: str) -> None:
    path, body, headers, status = CASES[case]
    assert_alike(mesh.port, plain_and_chunked(path, body, headers), status)


def assert_alike(port: int, sent: tuple[bytes, bytes], status: int) -> Answer:
    """`sent` answered alike by the front and by aiohttp; aiohttp's answer."""
    fronted, fronted_closed = exchange(port, sent[0])
    alone, alone_closed = exchange(port, sent[1])
    assert alone.status == status, alone.body
    assert comparable(fronted) == comparable(alone)
    assert fronted_closed == alone_closed
    return alone


# The worker's answer (by the echo worker's faults), and what the client gets: relayed
# (400, and 503 and 429, the last retryable answer), or the node's own 503 (a redirect).
WORKER_FAULTS = {
    "a 400 relayed": ({"fail_status": 400}, 400),
    "a 503 relayed": ({"fail_status": 503}, 503),
    "a 429 relayed": ({"fail_status": 429}, 429),
    "no worker answered": ({"redirect_to": "http://127.0.0.1:9"}, 503),
}


@pytest.mark.parametrize("case", sorted(WORKER_FAULTS))
def test_worker_failures_are_answered_alike(mesh: Mesh, case: str) -> None:
    faults, status = WORKER_FAULTS[case]
    mesh.faults(**faults)
    try:
        headers = {**AUTH, "X-Request-Id": f"rid-{case}"}
        answer = assert_alike(
            mesh.port, plain_and_chunked("/v1/chat/completions", CHAT, headers), status
        )
        if case != "no worker answered":  # a worker's answer names the request and the worker
            assert ("X-Request-Id", f"rid-{case}") in answer.headers
            assert "X-Meshgate-Worker" in dict(answer.headers)
    finally:
        mesh.faults(fail_status=None, redirect_to=None)


def test_rate_limited_answers_and_their_headers_are_alike(mesh: Mesh) -> None:
    """A limit whose burst is one: the first request passes, then each is refused (429)."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    limit = {"scope": "m1", "requests_per_second": 0.001, "burst": 1}
    made = requests.post(mesh.node + "/ha/rate-limit", json=limit, headers=admin, timeout=10)
    assert made.status_code < 300, made.text
    try:
        plain, chunked = plain_and_chunked("/v1/chat/completions", CHAT, AUTH)
        exchange(mesh.port, plain)  # spends the burst
        fronted, _ = exchange(mesh.port, plain)
        alone, _ = exchange(mesh.port, chunked)
        assert alone.status == 429, alone.body
        assert ("Retry-After", "1000") in alone.headers  # the limit's wait, in seconds
        assert comparable(fronted) == comparable(alone)
    finally:
        requests.delete(mesh.node + "/ha/rate-limit/m1", headers=admin, timeout=10)


def test_answers_a_wasm_module_edits_are_alike(mesh: Mesh) -> None:
    """An OnResponse module that marks every answer, the worker's and the node's own."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    module = {
        "name": "mark",
        "wasm_base64": base64.b64encode(module_bytes("mark")).decode(),
        "attach_points": [{"Middleware": "OnResponse"}],
    }
    added = requests.post(
        mesh.node + "/wasm", json={"modules": [module]}, headers=admin, timeout=10
    )
    assert added.status_code == 200, added.text
    module_id = added.json()["modules"][0]["add_result"]["Success"]
    answer = plain_and_chunked("/v1/chat/completions", CHAT, {**AUTH, "X-Request-Id": "rid-w"})
    try:
        wait_for(lambda: (SEEN_HEADER, "yes") in exchange(mesh.port, answer[0])[0].headers)
        assert (SEEN_HEADER, "yes") in assert_alike(mesh.port, answer, 200).headers
        mesh.faults(redirect_to="http://127.0.0.1:9")  # the node's own 503, through OnResponse
        assert (SEEN_HEADER, "yes") in assert_alike(mesh.port, answer, 503).headers
    finally:
        mesh.faults(redirect_to=None)
        gone = requests.delete(f"{mesh.node}/wasm/{module_id}", headers=admin, timeout=10)
        assert gone.status_code == 200, gone.text


def test_an_admission_refusal_is_answered_alike(mesh: Mesh) -> None:
    """One request in flight (held by the worker), none queued: the next is refused. Last
    in the module: the held request's slot is freed only once the node sees its client
    leave."""
    mesh.faults(latency_ms=30_000)
    plain, chunked = plain_and_chunked("/v1/chat/completions", CHAT, AUTH)
    try:
        with socket.create_connection(("127.0.0.1", mesh.port), timeout=10) as held:
            held.sendall(plain)
            wait_for(lambda: requests.get(mesh.worker + "/_stats", timeout=5).json()["in_flight"])
            fronted, _ = exchange(mesh.port, plain)
            alone, _ = exchange(mesh.port, chunked)
    finally:
        mesh.faults(latency_ms=0)
    assert alone.status == 429 and b'"queue_full"' in alone.body, alone.body
    assert "Retry-After" in dict(alone.headers)
    assert comparable(fronted) == comparable(alone)
