"""The Raft port attacks of issue 7, run for real against a default single node.

A node started without `--mesh-secret` (it generates one in its data dir)
and with its Raft port on a known loopback address. Each attack sends what
the attacker sent, waits until the node has closed the connection (so the
node has read and judged the payload), then checks what could have gone
wrong: the shell command's marker file, the replicated state, and that the
node still serves and commits writes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.raft_client import RaftClient, Shell, admin_key_command, frame, regular_entry
from tests.support import Node, free_port, strong, wait_for

WRONG_SECRET = strong("not-the-mesh-secret")


@pytest.fixture
def node(cluster: Cluster) -> Iterator[tuple[Node, str]]:
    address = f"127.0.0.1:{free_port()}"
    yield cluster.node("--mesh-bind", address, ready=False), address


def _status(node: Node) -> dict[str, Any]:
    return requests.get(node.url + "/ha/status", timeout=5).json()  # type: ignore[no-any-return]


def _still_serves_and_writes(node: Node, key: str) -> None:
    assert requests.get(node.url + "/liveness", timeout=5).status_code == 200
    resp = requests.post(node.url + "/ha/config", json={"key": key, "value": 1}, timeout=10)
    assert resp.status_code == 200, resp.text
    got = requests.get(f"{node.url}/ha/config/{key}", timeout=5).json()
    assert got["value"] == 1


@pytest.mark.parametrize(
    "secret", [None, WRONG_SECRET], ids=["pysyncobj-unencrypted", "wrong-secret"]
)
def test_a_pickle_that_runs_a_shell_command_runs_nothing(
    node: tuple[Node, str], tmp_path: Path, secret: str | None
) -> None:
    gateway, address = node
    marker = tmp_path / "pwned"
    payloads = [
        frame(Shell(f"touch {marker}"), secret),  # the 6-line script: the first frame
        frame("readonly", secret) + frame(Shell(f"touch {marker}"), secret),  # after a hello
    ]
    for payload in payloads:
        with RaftClient(address) as client:
            client.send_raw(payload)
            assert client.closed_by_node(), "the node kept the connection open"
    assert not marker.exists()
    wait_for(  # the count reaches /ha/status within a status period
        lambda: _status(gateway)["refused_connections"] >= len(payloads), what="refusals counted"
    )
    _still_serves_and_writes(gateway, "after.rce")


def test_holding_the_secret_an_authenticated_pickle_still_runs_nothing(
    node: tuple[Node, str], tmp_path: Path
) -> None:
    gateway, address = node
    secret = (gateway.data_dir / "mesh.secret").read_text().strip()
    marker = tmp_path / "pwned"
    for identity in ("readonly", ["status"]):
        with RaftClient(address, secret) as client:
            client.handshake(identity)  # the node accepted us: we hold the secret
            client.send({"type": "append_entries", "term": 1, "x": Shell(f"touch {marker}")})
            assert client.closed_by_node(), "the node kept the connection open"
    assert not marker.exists()
    _still_serves_and_writes(gateway, "after.authenticated.rce")


def test_without_the_secret_joining_as_a_member_to_commit_an_admin_key_commits_nothing(
    node: tuple[Node, str],
) -> None:
    gateway, address = node
    entry = regular_entry(admin_key_command("pwned"))
    apply = {"type": "apply_command", "command": entry, "request_id": 1}
    append = {
        "type": "append_entries",
        "term": 10**6,
        "commit_index": 10**6,
        "entries": [(entry, 3, 10**6)],
        "prevLogIdx": 2,
        "prevLogTerm": 1,
    }
    for secret in (None, WRONG_SECRET):
        for identity in ("readonly", address):  # a read-only member, or the node's own address
            with RaftClient(address) as client:
                client.send_raw(frame(identity, secret) + frame(apply, secret))
                client.send_raw(frame(append, secret))  # may fail: the node hangs up
                assert client.closed_by_node()
    _still_serves_and_writes(gateway, "after.injection")
    status = _status(gateway)
    assert status["stores"]["api_keys"] == 0
    assert status["term"] < 10**6 and status["unappliable_entries"] == 0


def test_a_connection_that_never_proves_the_secret_is_closed_at_the_handshake_deadline(
    node: tuple[Node, str],
) -> None:
    gateway, address = node
    slow = struct.pack("i", 500) + b"x" * 500  # a plausible frame, one byte a second
    with RaftClient(address) as silent, RaftClient(address) as dripping:
        opened = time.monotonic()
        dripping_closed = False
        for i in range(15):  # 15 s of dripping, unless the node hangs up first
            dripping_closed = not dripping.send_raw(slow[i : i + 1]) or dripping.closed_by_node(1)
            if dripping_closed:
                break
        assert dripping_closed, "the node kept a dripping connection open"
        assert silent.closed_by_node(timeout=5.0), "the node kept a silent connection open"
        elapsed = time.monotonic() - opened
    print(f"\nunauthenticated connections closed {elapsed:.1f} s after they opened")
    assert elapsed < 12
    _still_serves_and_writes(gateway, "after.deadline")
