"""A voter that is the only member elects itself at once, not after an election timeout:
nobody else can win or split its vote, and every single-node start would wait 0.3-0.9 s.
Its status shows the change of role at once, not at the next periodic read."""

from __future__ import annotations

from pathlib import Path

from mesh.events import AppliedStream
from mesh.raft import MeshRaft, RaftSettings
from node.localmesh.process import free_port
from tests.support import strong, wait_for


def test_a_voter_alone_leads_without_waiting_out_its_election_timeout(tmp_path: Path) -> None:
    settings = RaftSettings(
        data_dir=tmp_path,
        self_address=f"127.0.0.1:{free_port()}",
        password=strong("solo"),
        raft_min_timeout=60.0,  # far longer than the wait below: only the shortcut can pass
        raft_max_timeout=61.0,
        link_timeout=61.0,  # pysyncobj wants it no shorter than the election timeout
    )
    raft = MeshRaft(settings, AppliedStream())
    raft._status_every = 60.0  # only a read on the change of role can show the new leader
    raft.start()
    try:
        wait_for(lambda: raft.status().is_leader, timeout=10, what="the solo voter leads")
        assert raft.status().solo
    finally:
        raft.stop()
