"""A leader's hand-over under steady writes (issue 10): the follower with the longest
log is chosen, it is the one that leads next, and no acknowledged write is lost.

Timing (how long writes stall) is measured by bench/raft_bench.py, not asserted here.
"""

from __future__ import annotations

import re
import time
from typing import Any

import requests

from node.localmesh import LocalNode
from tests.cluster.conftest import Mesh
from tests.support import wait_for
from tests.writers import Writers

CHOSEN = re.compile(r"handing leadership over to (\S+) \(its log reaches \d+, ours \d+\)")


def config_of(node: LocalNode) -> dict[str, Any]:
    body = requests.get(node.url + "/ha/config", timeout=5).json()
    return {c["key"]: c["value"] for c in body["config"]}


def same_config(nodes: list[LocalNode]) -> dict[str, Any] | None:
    configs = [config_of(n) for n in nodes]
    return configs[0] if all(c == configs[0] for c in configs[1:]) else None


def test_hand_over_under_writes_goes_to_the_chosen_follower_and_loses_nothing(mesh: Mesh) -> None:
    leader = mesh.leader()
    followers = [n for n in mesh.nodes if n is not leader]
    # Writes through every node: the leader's own are held and then forwarded, the
    # followers' are forwarded to the leader and, during the hand-over, resubmitted.
    with Writers(mesh.nodes, pause=0.005) as writers:
        wait_for(lambda: writers.acked_between(0, time.monotonic()) >= 30, what="writes")
        asked = requests.post(
            followers[0].url + "/ha/shutdown", json={"target": leader.name}, timeout=5
        )
        assert asked.status_code == 202, asked.text
        assert leader.proc.wait_exit(30) == 0
        handed_at = time.monotonic()
        new_leader = mesh.leader()
        wait_for(
            lambda: writers.acked_between(handed_at, time.monotonic(), [new_leader.name]) >= 10,
            what="writes acknowledged by the new leader",
        )
    log = leader.proc.log()
    chosen = CHOSEN.findall(log)
    assert chosen, log[-3000:]
    assert chosen[-1] == new_leader.raft_address  # the target it chose leads now
    assert "leadership handed over" in log
    final = wait_for(lambda: same_config(followers), what="equal replicas on the survivors")
    assert writers.lost(final) == []
    assert len(writers.acknowledged()) >= 40
