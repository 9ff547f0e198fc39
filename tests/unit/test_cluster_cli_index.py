"""`meshgate cluster` passes the index along: the highest X-Meshgate-Index it has seen
goes out as X-Meshgate-Min-Index on its next request, to whichever node."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from node.cluster_cli import Client, ClusterError
from tests.support import http_server

# What each request answers, in order: (status, X-Meshgate-Index).
ANSWERS = [(200, "7"), (404, "9"), (200, "3"), (200, "junk"), (200, "12")]


class Recorder(BaseHTTPRequestHandler):
    sent: list[str | None] = []

    def do_GET(self) -> None:
        status, index = ANSWERS[len(self.sent)]
        self.sent.append(self.headers.get("X-Meshgate-Min-Index"))
        self.send_response(status)
        self.send_header("X-Meshgate-Index", index)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.sent = []
    with http_server(Recorder) as url:
        yield url


def test_the_client_sends_the_highest_index_it_has_seen(server: str) -> None:
    client = Client(server, None)
    client.get("/ha/status")
    with pytest.raises(ClusterError):  # an error's index counts too
        client.get("/ha/status")
    for _ in range(3):
        client.get("/ha/status")
    # Nothing before the first answer; an index never goes back; junk is ignored.
    assert Recorder.sent == [None, "7", "9", "9", "9"]
    assert client.index == 12
