"""`LeaderHandOver` (mesh/raft_handover.py) wired to a stand-in for pysyncobj's SyncObj:
what it sends, and when it holds pysyncobj's command queue back and lets it go."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from mesh import raft_handover
from mesh.raft_handover import LeaderHandOver

FOLLOWER, LEADER = 0, 2


class Node:
    def __init__(self, address: str) -> None:
        self.id = address


class Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, node: Node, message: dict[str, Any]) -> None:
        self.sent.append((node.id, message))


class SyncObj:
    """What pysyncobj's step does: count the times the queue was taken."""

    def __init__(self) -> None:
        self.queue_taken = 0

    def _checkCommandsToApply(self) -> None:
        self.queue_taken += 1


class Leader(LeaderHandOver, SyncObj):
    def __init__(self, matches: dict[str, int], last: int, contacts: dict[str, float]) -> None:
        super().__init__()
        self._init_hand_over(pause=0.5)
        nodes = {address: Node(address) for address in matches}
        self.nodes = nodes
        self._SyncObj__raftState = LEADER
        self._SyncObj__raftLeader: Node | None = None
        self._SyncObj__raftCurrentTerm = 7
        self._SyncObj__otherNodes = set(nodes.values())
        self._SyncObj__connectedNodes = set(nodes.values())
        self._SyncObj__raftMatchIndex = {nodes[a]: m for a, m in matches.items()}
        self._SyncObj__lastResponseTime = {nodes[a]: t for a, t in contacts.items()}
        self._SyncObj__conf = SimpleNamespace(raftMinTimeout=0.3)
        self.transport = Transport()
        self._SyncObj__transport = cast(Any, self.transport)
        self.last = last

    def _SyncObj__getCurrentLogIndex(self) -> int:
        return self.last

    def tick(self) -> None:
        """The order of `_MeshSyncObj._onTick`: the hand-over's step, then pysyncobj's."""
        self._advance_hand_over()
        self._checkCommandsToApply()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    now = SimpleNamespace(t=100.0)
    monkeypatch.setattr(raft_handover, "pysyncobj_clock", lambda: now.t)
    return now


def test_the_longest_log_is_told_to_campaign_once_it_has_every_entry(clock: Any) -> None:
    leader = Leader({"a:1": 8, "b:1": 9}, last=10, contacts={"a:1": 5.0, "b:1": 1.0})
    assert leader.start_hand_over() == "b:1"
    assert leader.transport.sent == []  # b lacks entry 10
    leader.tick()
    assert leader.queue_taken == 0  # nothing new enters the log meanwhile
    leader._SyncObj__raftMatchIndex[leader.nodes["b:1"]] = 10
    leader.tick()
    assert leader.transport.sent == [("b:1", {"type": "timeout_now", "term": 7})]
    assert leader.queue_taken == 0


def test_held_commands_go_on_once_another_node_leads(clock: Any) -> None:
    leader = Leader({"a:1": 10, "b:1": 10}, last=10, contacts={"a:1": 5.0, "b:1": 1.0})
    assert leader.start_hand_over() == "a:1"  # a tie: the one heard from last
    assert [to for to, _ in leader.transport.sent] == ["a:1"]
    # a's vote request deposed us: no leader known yet, so the commands still wait
    leader._SyncObj__raftState = FOLLOWER
    leader.tick()
    assert leader.queue_taken == 0
    leader._SyncObj__raftLeader = leader.nodes["a:1"]  # a's first append arrived
    leader.tick()
    assert leader.queue_taken == 1
    assert leader.start_hand_over() is None  # a follower hands nothing over


def test_the_pause_runs_out_and_commands_go_on(clock: Any) -> None:
    leader = Leader({"a:1": 3}, last=10, contacts={"a:1": 5.0})
    assert leader.start_hand_over() == "a:1"
    clock.t += 0.49
    leader.tick()
    assert leader.queue_taken == 0
    clock.t += 0.01
    leader.tick()
    assert leader.queue_taken == 1
    assert leader.transport.sent == []


def test_asking_again_during_a_hand_over_does_not_restart_it(clock: Any) -> None:
    leader = Leader({"a:1": 3, "b:1": 2}, last=10, contacts={"a:1": 5.0, "b:1": 6.0})
    assert leader.start_hand_over() == "a:1"
    leader._SyncObj__raftMatchIndex[leader.nodes["b:1"]] = 10  # b overtakes a meanwhile
    clock.t += 0.3
    assert leader.start_hand_over() == "a:1"
    clock.t += 0.2
    leader.tick()
    assert leader.queue_taken == 1  # the first pause's bound holds


def test_no_reachable_follower_means_no_hand_over_and_nothing_held(clock: Any) -> None:
    leader = Leader({"a:1": 10}, last=10, contacts={"a:1": 5.0})
    leader._SyncObj__connectedNodes = set()
    assert leader.start_hand_over() is None
    leader.tick()
    assert leader.queue_taken == 1
