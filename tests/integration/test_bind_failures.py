"""A port the node cannot listen on stops `meshgate serve` at start with exit 2 and one
line naming the flag and the address (it never looks alive while it cannot serve)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support import Node, free_port


def _held_port() -> tuple[socket.socket, int]:
    """A loopback port that someone else is listening on."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    return holder, holder.getsockname()[1]


def test_busy_raft_port_exits_2_with_one_line(tmp_path: Path) -> None:
    holder, port = _held_port()
    with holder:
        node = Node(tmp_path, "--mesh-bind", f"127.0.0.1:{port}")
        code = node.proc.wait_exit(timeout=30)
    log = node.proc.log()
    errors = [line for line in log.splitlines() if line.startswith("meshgate serve: error")]
    assert code == 2, log
    assert errors == [
        f"meshgate serve: error: --mesh-bind: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    ], log
    assert "Traceback" not in log
    assert "serving on" not in log


def test_busy_http_port_exits_2_with_one_line(tmp_path: Path) -> None:
    holder, port = _held_port()
    with holder:
        node = Node(tmp_path, "--mesh-bind", f"127.0.0.1:{free_port()}", port=port)
        code = node.proc.wait_exit(timeout=30)
    log = node.proc.log()
    assert code == 2, log
    assert f"meshgate serve: error: --port: cannot listen on 127.0.0.1:{port}" in log
    assert "Traceback" not in log
