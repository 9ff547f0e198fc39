"""A node name held by a live member is refused at start (two nodes under one name
would share one membership record: draining one would drain both)."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.cluster.conftest import Mesh, joining_voter
from tests.support import wait_for


def test_a_second_node_with_a_taken_name_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    first = mesh.nodes[0]
    before = {n["name"]: n for n in mesh.status(first)["nodes"]}
    workdir = tmp_path / "second"  # its own log and data directory, not n1's
    workdir.mkdir()
    second, raft = joining_voter(mesh, workdir, first.name)
    try:
        second.wait_serving()  # its Raft port is open: the add probes it
        added = requests.post(first.url + "/ha/members", json={"raft_address": raft}, timeout=10)
        assert added.status_code == 200, added.text
        code = second.proc.wait_exit(timeout=30)
        log = second.proc.log()
        errors = [line for line in log.splitlines() if line.startswith("meshgate serve: error")]
        assert code == 2, log
        assert len(errors) == 1, log
        held = before[first.name]
        for named in (first.name, first.raft_address, held["boot_id"], raft):
            assert str(named) in errors[0], errors[0]
        assert "--node-name" in errors[0]
        after = {n["name"]: n for n in mesh.status(first)["nodes"]}
        assert after[first.name]["raft_address"] == first.raft_address  # the record is n1's
        assert after[first.name]["boot_id"] == held["boot_id"]
    finally:
        second.proc.stop()


def test_a_restarted_node_takes_its_own_name_over(mesh: Mesh) -> None:
    node = mesh.nodes[1]
    old_boot = {n["name"]: n for n in mesh.status(node)["nodes"]}[node.name]["boot_id"]
    assert node.proc.stop() == 0
    node.restart()  # same name and Raft address, a new boot id
    node.wait_ready()

    def steady() -> bool:
        local = requests.get(node.url + "/ha/local", timeout=2).json()
        return str(local["control_loop"]["last"]).startswith("steady")

    wait_for(steady, timeout=20, what=f"{node.name} announced and steady")

    def seen_anew() -> bool:
        record = {n["name"]: n for n in mesh.status(mesh.nodes[0])["nodes"]}[node.name]
        return bool(record["boot_id"] != old_boot and record["status"] == "alive")

    wait_for(seen_anew, timeout=10, what=f"{node.name} seen by n1 with its new boot id")
    assert node.proc.alive()
