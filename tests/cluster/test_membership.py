"""Membership that cannot wedge the mesh: a voter that does not answer is never added,
and one that will never come back can be removed without it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.cluster.conftest import Mesh, cluster_cli, joining_voter
from tests.support import free_port, wait_for


@pytest.fixture(scope="module")
def mesh(module_mesh: Mesh) -> Mesh:
    """One mesh for each test leaves its three members as they were."""
    return module_mesh


def _write(mesh: Mesh, key: str) -> int:
    body = {"key": key, "value": 1}
    return requests.post(mesh.nodes[1].url + "/ha/config", json=body, timeout=10).status_code


def test_a_voter_that_does_not_answer_is_refused_after_a_probe(mesh: Mesh) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    refused = requests.post(
        mesh.nodes[0].url + "/ha/members", json={"raft_address": nowhere}, timeout=10
    )
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (
        error["code"] == "MEMBER_NOT_ANSWERING" and "start the new node first" in error["message"]
    )
    assert time.monotonic() - started < 5
    by_cli = cluster_cli(mesh, "add-member", nowhere)
    assert by_cli.returncode != 0 and "nothing answers" in by_cli.stderr + by_cli.stdout
    status = mesh.status()
    assert status["node_count"] == 3
    assert nowhere not in {p.get("raft_address") for p in status["nodes"]}
    assert _write(mesh, "after-refusal") == 200  # the quorum is what it was


def test_a_member_that_will_never_come_back_is_removed_by_force(mesh: Mesh, tmp_path: Path) -> None:
    fourth, raft4 = joining_voter(mesh, tmp_path, "n4")
    try:
        fourth.wait_serving()  # its Raft port is open: the add probes it
        added = requests.post(
            mesh.nodes[0].url + "/ha/members", json={"raft_address": raft4}, timeout=10
        )
        assert added.status_code == 200, added.text
        wait_for(
            lambda: "n4" in {n["name"] for n in mesh.status(mesh.nodes[0])["nodes"]},
            what="n4 announced",
        )
        fourth.proc.kill()  # its machine is gone for good

        def n4_status() -> str:
            nodes = mesh.status(mesh.nodes[0])["nodes"]
            return next(n["status"] for n in nodes if n["name"] == "n4")

        wait_for(lambda: n4_status() == "unreachable", what="n4 seen unreachable")
        plain = requests.delete(mesh.nodes[0].url + "/ha/members/n4", timeout=10)
        assert plain.status_code == 409
        assert "force=true" in plain.json()["error"]["message"]
        forced = cluster_cli(mesh, "remove-member", "n4", "--force")
        assert forced.returncode == 0, forced.stderr

        def removed() -> bool:
            # Raft's view in the report is a snapshot refreshed on the Raft thread's tick.
            status = mesh.status(mesh.nodes[0])
            names = {n["name"] for n in status["nodes"]}
            in_raft = {n["raft_address"] for n in status["nodes"]}  # gone from Raft too
            return "n4" not in names and raft4 not in in_raft and status["node_count"] == 3

        wait_for(removed, timeout=5, what="n4 gone from the members and from Raft")
        assert _write(mesh, "after-forced-removal") == 200
        bad = requests.delete(mesh.nodes[0].url + "/ha/members/n2?force=maybe", timeout=5)
        assert bad.status_code == 400
    finally:
        fourth.proc.stop()
