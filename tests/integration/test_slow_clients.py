"""Slowloris: clients that trickle headers or bodies are cut off in bounded time.

Dozens of connections send a request's headers, or its body, a byte at a time.
Each is answered 408 and closed within the configured read timeout (plus a
margin), while ordinary requests, and a stream that lasts longer than both
timeouts, are served as usual.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import requests

from tests.integration.conftest import Cluster

MODEL = "echo-model"
HEADER_TIMEOUT, BODY_TIMEOUT = 1.0, 2.0
SLOW_HEADERS = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"X-Slow: "
)
SLOW_BODY = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{"
)


def _open(url: str, first: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(first)
    return sock


def _trickle(socks: list[socket.socket], limit: float) -> dict[socket.socket, tuple[float, bytes]]:
    """Send one byte on each socket every 0.2 s until the node closes it; when, and its answer."""
    started = time.monotonic()
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    answers = {sock: b"" for sock in socks}
    while len(closed) < len(socks) and time.monotonic() - started < limit:
        for sock in socks:
            if sock in closed:
                continue
            readable, _, _ = select.select([sock], [], [], 0)
            data = b""
            try:
                if readable:
                    data = sock.recv(65536)
                    answers[sock] += data
                if readable and not data:
                    closed[sock] = (time.monotonic() - started, answers[sock])
                else:
                    sock.send(b"a")
            except OSError:
                closed[sock] = (time.monotonic() - started, answers[sock])
        time.sleep(0.2)
    for sock in socks:
        sock.close()
    return closed


def test_slow_headers_and_bodies_are_cut_off_while_normal_traffic_flows(cluster: Cluster) -> None:
    _, worker = cluster.echo("--token-delay-ms", "100", model=MODEL)
    node = cluster.node(
        "--worker-urls",
        worker,
        "--header-read-timeout-secs",
        str(HEADER_TIMEOUT),
        "--body-read-timeout-secs",
        str(BODY_TIMEOUT),
    )
    streamed: list[bytes] = []

    def long_stream() -> None:  # ~3 s: longer than both read timeouts
        body = {
            "model": MODEL,
            "max_tokens": 30,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
        with requests.post(
            node.url + "/v1/chat/completions", json=body, stream=True, timeout=30
        ) as r:
            streamed.append(b"".join(r.iter_content()))

    streaming = threading.Thread(target=long_stream)
    streaming.start()
    idle = [_open(node.url, b"") for _ in range(10)]
    slow_headers = [_open(node.url, SLOW_HEADERS) for _ in range(20)]
    slow_bodies = [_open(node.url, SLOW_BODY) for _ in range(20)]
    served = []
    for _ in range(5):  # normal requests meanwhile
        chat = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
        served.append(requests.post(node.url + "/v1/chat/completions", json=chat, timeout=10))
    closed = _trickle(idle + slow_headers + slow_bodies, limit=15)
    streaming.join(timeout=30)

    assert all(r.status_code == 200 for r in served)
    assert len(closed) == len(idle) + len(slow_headers) + len(slow_bodies)  # no one held on
    for sock in idle + slow_headers:
        after, answer = closed[sock]
        assert after < HEADER_TIMEOUT + 2.5
    assert all(closed[s][1].startswith(b"HTTP/1.1 408") for s in slow_headers)
    for sock in slow_bodies:
        after, answer = closed[sock]
        assert after < BODY_TIMEOUT + 2.5
        assert answer.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in answer
    assert streamed and streamed[0].rstrip().endswith(b"data: [DONE]")
    assert requests.get(node.url + "/readiness", timeout=5).status_code == 200


def test_a_request_pipelined_behind_another_cannot_hold_the_connection(cluster: Cluster) -> None:
    """Its bytes arrive with the request before it, so they start no header timer of their
    own: the idle deadline after that request closes the connection."""
    node = cluster.node(
        "--header-read-timeout-secs",
        str(HEADER_TIMEOUT),
        "--keepalive-timeout-secs",
        "2",
        ready=False,
    )
    pipelined = (
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"
    )
    socks = [_open(node.url, pipelined) for _ in range(10)]
    started = time.monotonic()
    try:
        for sock in socks:
            sock.settimeout(10)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            assert received.startswith(b"HTTP/1.1 200"), received[:100]
    finally:
        for sock in socks:
            sock.close()
    assert time.monotonic() - started < 2 + 3  # the idle deadline, plus a margin
    assert requests.get(node.url + "/health", timeout=5).status_code == 200
