"""Raft's ReadIndex on a 3-member group in this process (`MeshRaft.leader_read_index`,
node/read_index.py): a leader reads on its lease, a follower through a barrier."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.applied_wait import AppliedWaiter
from node.read_index import ReadIndex
from tests.integration.test_stale_commands import Group
from tests.support import wait_for

pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed file.*raft.journal.meta:ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)


def test_a_leader_reads_on_its_lease_and_a_follower_through_a_barrier(tmp_path: Path) -> None:
    group = Group(tmp_path)
    try:
        leader, follower = group.leader.raft, group.follower.raft
        assert group.write(group.leader, "k", 1)["ok"]
        index = wait_for(leader.leader_read_index, what="the leader's lease")
        assert index == leader.indexes()[0]
        assert follower.leader_read_index() is None
        # Heartbeats every 50 ms keep a 150 ms lease, judged on one clock (pysyncobj
        # stamps answers with CLOCK_MONOTONIC_RAW, not time.monotonic()).
        held = 0
        for _ in range(50):
            held += leader.leader_read_index() is not None
            time.sleep(0.01)
        assert held >= 25, f"the lease held in {held} of 50 samples"

        assert group.write(group.leader, "k", 2)["ok"]
        before = follower.indexes()[1]
        reads = ReadIndex(follower, AppliedWaiter(follower.indexes, follower.stream), 2.0, "t")
        group.run(reads.current())
        # The barrier came after the write: the follower has applied both.
        assert follower.state.config["k"]["value"] == 2
        assert follower.indexes()[1] >= max(before + 1, leader.indexes()[1] - 1)
    finally:
        group.stop()
