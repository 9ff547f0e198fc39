"""Faults of a node of several processes, run for real: one node, `serve --processes 2`,
configured by a file alone, shared by the module (the test that SIGKILLs its control
process runs last).

- its data-plane processes log at the file's `log_level` (a forked child resets the
  root logger it inherited);
- a restarted data-plane process runs with its control process's settings, not the
  file as it is now (changed, or broken);
- SIGKILL the control process and the port closes at once, whatever drain a child had
  begun (the link's end-of-file means the control process is gone).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.localmesh.mesh import SECRET_ENV
from node.localmesh.process import Child
from tests.cluster.test_processes import alive, children_of, fresh
from tests.support import MESH_SECRET, free_port, wait_for

DRAIN_DELAY = 5  # what an orphan that drained would keep serving
PORT_CLOSED_SECS = 2.5  # the bound is ~1.5 s: slack for a loaded machine


class FileNode:
    """`meshgate serve --config FILE` at --processes 2, its settings in FILE alone."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / "meshgate.toml"
        self.write_config(self.port)
        args = ["serve", "--config", str(self.config), "--data-dir", str(tmp_path / "data")]
        self.proc = Child(args, tmp_path / "node.log", env={SECRET_ENV: MESH_SECRET})

    def write_config(self, port: int) -> None:
        self.config.write_text(
            f'port = {port}\nprocesses = 2\nlog_level = "debug"\nnode_name = "n1"\n'
            f"drain_delay_secs = {DRAIN_DELAY}\n"
        )

    def process(self, name: str) -> dict[str, object]:
        shown = fresh("GET", self.url + "/ha/local").json()["processes"]
        return next(p for p in shown if p["name"] == name)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileNode]:
    started = FileNode(tmp_path_factory.mktemp("faults"))
    try:
        wait_for(
            lambda: "with 2 data-plane processes" in started.proc.log(),
            timeout=60,
            what="the node to report both data-plane processes listening",
        )
        yield started
    finally:
        started.proc.stop()
        started.proc.close()


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def restart_p1(node: FileNode) -> dict[str, object]:
    """SIGKILL p1 and return it as /ha/local shows it once it runs and is ready again."""
    before = node.process("p1")
    os.kill(int(str(before["pid"])), signal.SIGKILL)
    return wait_for(
        lambda: (lambda p: p if p["pid"] != before["pid"] and p["ready"] else None)(
            node.process("p1")
        ),
        timeout=30,
        what="p1 to be restarted and ready",
    )


def test_data_plane_processes_log_at_the_configured_level(node: FileNode) -> None:
    wait_for(
        lambda: re.search(r" DEBUG \[p[12]\] ", node.proc.log()),
        timeout=10,
        what="a DEBUG line from a data-plane process",
    )


def test_a_restarted_child_runs_with_the_control_settings_not_the_file(node: FileNode) -> None:
    elsewhere = free_port()
    node.write_config(elsewhere)  # the file changed since the node started
    restarted = restart_p1(node)
    assert restarted["starts"] == 2, restarted
    wait_for(
        lambda: fresh("GET", node.url + "/readiness").headers.get("X-Meshgate-Process") == "p1",
        timeout=10,
        what="the restarted p1 to answer on the node's own port",
    )
    assert port_closed(elsewhere)
    node.config.write_text("port = 0\n")  # and now broken: a child must not refuse over it
    again = restart_p1(node)
    assert again["starts"] == 3, again
    assert node.proc.alive()
    assert "refused to run" not in node.proc.log()


def test_a_killed_control_process_closes_the_port_at_once(node: FileNode) -> None:
    """Last: the node stays down."""
    data_plane = children_of(node.proc.pid)
    assert len(data_plane) == 2, data_plane
    killed = time.monotonic()
    os.kill(node.proc.pid, signal.SIGKILL)  # the control process alone, not its group
    wait_for(lambda: port_closed(node.port), timeout=10, what="the port to close")
    closed = time.monotonic() - killed
    assert closed < PORT_CLOSED_SECS, f"the port closed {closed:.1f}s after the SIGKILL"
    wait_for(lambda: not any(alive(pid) for pid in data_plane), timeout=5, what="orphans to exit")
