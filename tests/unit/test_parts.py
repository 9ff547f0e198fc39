"""Parts built from parts: readiness and the stopper, each without a Node.

Readiness is a pure reading of three facts; the stopper needs Raft, admission
and a peer-reachability check, so both run here with small stand-ins.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

from mesh.raft import NOT_COMMITTED, MeshRaft, RaftStatus
from node import exit_status
from node.app import cut_off_from_quorum
from node.ha.peers import PeerPoller, PeerView
from node.ha.shutdown import Stopper
from node.limits.admission import Admission
from node.readiness import degraded_problems, readiness_problems
from node.workers.worker import Worker


def raft_status(ready: bool = True, leader: str | None = "127.0.0.1:1") -> RaftStatus:
    role = "leader" if leader else "follower"
    return RaftStatus(None, role, leader, 1, 5, 5, 5, True, 5, ready)


def workers(*routable: bool) -> list[Worker]:
    return [cast(Worker, SimpleNamespace(routable=r)) for r in routable]


def test_a_loaded_node_with_a_healthy_worker_is_ready() -> None:
    assert readiness_problems(False, None, workers(False, True)) == []


def test_every_reason_is_named() -> None:
    problems = readiness_problems(True, "not loaded", workers(False), requires_workers=True)
    assert problems == ["node is draining", "not loaded", "no healthy worker"]


def test_no_leader_and_no_worker_leave_a_loaded_node_ready() -> None:
    """Static stability: the data plane stays in the load balancer; /health says degraded."""
    assert readiness_problems(False, None, workers(False)) == []
    assert readiness_problems(False, None, []) == []
    assert degraded_problems(raft_status(leader=None), workers(False)) == [
        "the mesh has no leader",
        "no healthy worker",
    ]
    assert degraded_problems(raft_status(), workers(True)) == []


def test_readiness_requires_workers_restores_the_old_rule() -> None:
    assert readiness_problems(False, None, workers(False), requires_workers=True) == [
        "no healthy worker"
    ]
    assert readiness_problems(False, None, workers(True), requires_workers=True) == []


class FakeRaft:
    def __init__(self, plans: dict[str, dict[str, Any]]) -> None:
        self.state = SimpleNamespace(shutdowns=plans)

    def status(self) -> RaftStatus:
        return raft_status(leader=None)  # a follower: nothing to hand over


def plan(targets: dict[str, str], scope: str = "node") -> dict[str, Any]:
    return {
        "id": "p1",
        "requested_by": "ops",
        "targets": targets,
        "grace_period_secs": 1,
        "drain_delay_secs": 0,
        "scope": scope,
    }


def stopper_for(targets: dict[str, str]) -> Stopper:
    raft = cast(MeshRaft, FakeRaft({"p1": plan(targets)}))
    return Stopper("n1", "boot-2", raft, Admission(4, 4, 1.0), lambda name: False)


def test_a_plan_for_this_run_drains_and_stops() -> None:
    async def run() -> Stopper:
        stopper = stopper_for({"n1": "boot-2"})
        stopper.follow(plan({"n1": "boot-2"}))
        await asyncio.wait_for(stopper.stopped.wait(), timeout=5)
        return stopper

    stopper = asyncio.run(run())
    assert stopper.draining
    assert stopper.step == "stopped"
    assert stopper.reason == "shutdown plan p1 from ops"
    assert stopper.exit_code == exit_status.STOPPED  # a supervisor restarts it


def test_a_cluster_plan_exits_with_the_status_that_keeps_the_node_down() -> None:
    async def run(refused_first: bool) -> int:
        stopper = stopper_for({"n1": "boot-2"})
        if refused_first:
            stopper.refuse("name taken")
        stopper.follow(plan({"n1": "boot-2"}, scope="cluster"))
        await asyncio.wait_for(stopper.stopped.wait(), timeout=5)
        return stopper.exit_code

    assert asyncio.run(run(refused_first=False)) == exit_status.CLUSTER_SHUTDOWN
    assert asyncio.run(run(refused_first=True)) == exit_status.REFUSED  # the first reason stands


def test_a_node_cut_off_from_quorum_refuses_writes_before_sending_them() -> None:
    """Static stability: a control write answers 503 not_committed at once, never a
    504 "unknown" after waiting on a leader that is gone."""
    long_ago = time.monotonic() - 60
    lost = replace(raft_status(leader=None), has_quorum=False, last_leader_contact=long_ago)
    refusal = cut_off_from_quorum(lost, "rid-1")
    assert refusal is not None
    said = (refusal.outcome, refusal.reason, refusal.request_id)
    assert said == (NOT_COMMITTED, "no_quorum", "rid-1")
    assert refusal.retry_after >= 1
    just_lost = replace(lost, last_leader_contact=time.monotonic())  # an election may follow
    assert cut_off_from_quorum(just_lost, "rid-2") is None
    assert cut_off_from_quorum(replace(lost, has_quorum=True), "rid-3") is None
    assert cut_off_from_quorum(replace(lost, solo=True), "rid-4") is None
    starting = replace(lost, last_leader_contact=None)  # waits for a first leader as usual
    assert cut_off_from_quorum(starting, "rid-5") is None


def test_a_ready_peer_without_a_healthy_worker_takes_no_rate_limit_share() -> None:
    poller = PeerPoller(cast(Any, None), dict, "n1", "token")

    def seen(**report: Any) -> bool:
        poller.views["n2"] = PeerView("n2", "http://n2", reachable=True, report=report)
        return poller.serving("n2")

    assert seen(ready=True, has_healthy_worker=True)
    assert not seen(ready=True, has_healthy_worker=False)  # ready, but answers 503
    assert seen(ready=True)  # an earlier version: ready implied a healthy worker
    assert not seen(ready=True, has_healthy_worker=True, draining=True)
    assert not seen(ready=False, has_healthy_worker=True)
