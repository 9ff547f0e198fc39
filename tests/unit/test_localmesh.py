"""The local-mesh harness builds its command lines and ports without starting anything."""

from __future__ import annotations

from pathlib import Path

from node.localmesh import LocalMesh, serve_args
from node.localmesh.mesh import SECRET_ENV


def test_serve_args_name_the_mesh_only_for_a_member_of_one(tmp_path: Path) -> None:
    alone = serve_args("a", 8000, tmp_path / "a", worker_urls=["http://w"])
    assert "--mesh-bind" not in alone and "--mesh-peers" not in alone
    assert alone[-2:] == ["--worker-urls", "http://w"]
    member = serve_args(
        "b", 8001, tmp_path / "b", raft_bind="127.0.0.1:1", raft_peers=["127.0.0.1:2"]
    )
    at = member.index("--mesh-bind")
    assert member[at : at + 4] == ["--mesh-bind", "127.0.0.1:1", "--mesh-peers", "127.0.0.1:2"]


def test_a_mesh_gets_distinct_ports_and_keeps_its_secret_off_the_command_line(
    tmp_path: Path,
) -> None:
    mesh = LocalMesh(tmp_path, nodes=3, workers=2)
    raft_ports = [int(a.rsplit(":", 1)[1]) for a in mesh.raft]
    ports = [*mesh.http_ports, *raft_ports, *mesh.worker_ports]
    assert len(ports) == len(set(ports)) == 8
    assert len(mesh.secret) >= 32 and mesh.env[SECRET_ENV] == mesh.secret
    flags = mesh.node_flags(0)
    assert mesh.secret not in " ".join(flags)
    assert flags[:5] == ["--mesh-bind", mesh.raft[0], "--mesh-peers", *mesh.raft[1:]]
    assert flags[5:] == ["--worker-urls", *mesh.worker_urls]


def test_a_lone_node_has_no_raft_peers_and_a_mesh_cleans_up_the_dir_it_made() -> None:
    mesh = LocalMesh(nodes=1, workers=0, http_ports=[1234])
    assert mesh.raft == [] and mesh.urls == [] and mesh.http_ports == [1234]
    workdir = mesh.workdir
    assert workdir.is_dir()
    mesh.stop()
    assert not workdir.exists()
