"""The node's control loop: which duty a view calls for, and what a cycle does and says.

`decide` is pure, so its precedence is checked view by view. `ControlLoop`
runs here against small stand-ins for Raft, the stopper and discovery, with
a commit function that records the commands it is handed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mesh.raft import CommitError, MeshRaft, RaftStatus
from node.control_loop import ControlLoop, Identity, Step, View, decide
from node.ha.shutdown import Stopper
from node.workers.credentials import CredentialBox
from node.workers.discovery import DiscoveryJobs

IDLE = View(
    stopping=None,
    plan=None,
    leader="n1",
    caught_up_once=True,
    is_leader=False,
    announced=True,
    auth_to_record=False,
    to_register=(),
    to_resume=(),
    stranded=(),
    to_seal=(),
    role="follower",
    workers=2,
)


def with_(**changes: Any) -> View:
    return dataclasses.replace(IDLE, **changes)


def test_a_node_with_nothing_to_do_says_it_is_steady() -> None:
    assert decide(IDLE) == Step("steady", "steady: follower, 2 worker(s) in the mesh")


@pytest.mark.parametrize(
    ("view", "kind"),
    [
        # each row also has every later duty pending: the earlier one wins
        (with_(stopping="draining", plan={"id": "p"}, leader=None), "stopping"),
        (with_(plan={"id": "p"}, leader=None, announced=False), "follow_plan"),
        (with_(leader=None, announced=False), "wait"),
        (with_(caught_up_once=False, announced=False), "wait"),
        (with_(announced=False, name_record={"boot_id": "b0"}, to_resume=("w",)), "check_name"),
        (with_(to_resume=("w",), stranded=("x",), announced=False), "resume"),
        (with_(stranded=("x",), announced=False), "adopt"),
        (with_(announced=False, auth_to_record=True, to_register=(("u", None),)), "announce"),
        (with_(auth_to_record=True, to_register=(("u", None),), to_seal=("y",)), "require_auth"),
        (with_(to_register=(("u", None),), to_seal=("y",)), "register"),
        (with_(to_seal=("y",)), "seal"),
    ],
)
def test_duties_come_in_order_of_precedence(view: View, kind: str) -> None:
    assert decide(view).kind == kind


def test_a_duty_that_just_failed_lets_the_others_go_first() -> None:
    stuck = with_(announced=False, to_register=(("u", None),), backing_off=frozenset({"announce"}))
    assert decide(stuck).kind == "register"
    only_stuck = with_(announced=False, backing_off=frozenset({"announce"}))
    assert decide(only_stuck) == Step("backoff", "retrying announcing this node")


def test_waiting_says_for_what() -> None:
    assert decide(with_(leader=None)).subject == "waiting for a leader"
    assert decide(with_(caught_up_once=False)).subject == "catching up with leader n1"


def raft_status(leader: str | None, role: str = "follower", ready: bool = True) -> RaftStatus:
    return RaftStatus(None, role, leader, 1, 5, 5, 5, True, 5, ready)


class FakeRaft:
    def __init__(self, workers: dict[str, dict[str, Any]], plans: dict[str, Any]) -> None:
        self.state = SimpleNamespace(
            workers=workers, shutdowns=plans, auth_required=False, members={}
        )
        self.leader: str | None = "n1"
        self.role = "follower"

    def status(self) -> RaftStatus:
        return raft_status(self.leader, self.role)


class FakeStopper:
    def __init__(self) -> None:
        self.requested = False
        self.step = "running"
        self.followed: list[str] = []

    def follow(self, plan: dict[str, Any]) -> None:
        self.requested, self.step = True, "draining"
        self.followed.append(plan["id"])


class Harness:
    def __init__(self, workers: dict[str, dict[str, Any]] | None = None) -> None:
        self.raft = FakeRaft(workers or {}, {})
        self.stopper = FakeStopper()
        self.discovery = SimpleNamespace(jobs={}, started=[], start=self.start_job)
        self.commits: list[tuple[str, dict[str, Any]]] = []
        self.registered: list[str] = []
        self.fail_commits: CommitError | None = None
        self.loop = ControlLoop(
            Identity("n2", "boot-2", 1.0, "0.1.0", "http://n2", True, "10.0.0.2:4321"),
            cast(MeshRaft, self.raft),
            cast(Stopper, self.stopper),
            cast(DiscoveryJobs, self.discovery),
            CredentialBox("s" * 40),
            self.commit,
            self.register,
            worker_urls=[("http://w1", None), ("http://w2", ("u", "p"))],
            guarded=True,
            actor="node:n2",
            interval=lambda: 1.0,
            stale_job_after=10.0,
        )

    def start_job(self, worker_id: str) -> None:
        self.discovery.started.append(worker_id)
        self.discovery.jobs[worker_id] = "running"

    async def commit(self, op: str, args: dict[str, Any]) -> None:
        if self.fail_commits is not None:
            raise self.fail_commits
        self.commits.append((op, args))
        if op == "auth.require":
            self.raft.state.auth_required = True

    async def register(self, url: str, userinfo: tuple[str, str] | None) -> None:
        self.registered.append(url)

    def cycles(self, n: int) -> list[tuple[str, float]]:
        async def run() -> list[tuple[str, float]]:
            return [await self.loop.run_cycle() for _ in range(n)]

        return asyncio.run(run())


def test_a_new_node_announces_itself_records_auth_and_registers_its_workers() -> None:
    h = Harness()
    said = h.cycles(5)
    assert [s for s, _ in said] == [
        "announced this node to the mesh (boot id boot-2)",
        "recorded that the mesh requires credentials",
        "registered worker http://w1",
        "registered worker http://w2",
        "steady: follower, 0 worker(s) in the mesh",
    ]
    assert [pause for _, pause in said] == [0.0, 0.0, 0.0, 0.0, 1.0]  # no pause between steps
    assert [op for op, _ in h.commits] == ["member.upsert", "auth.require"]
    assert h.commits[0][1]["member"]["boot_id"] == "boot-2"
    assert h.registered == ["http://w1", "http://w2"]


def test_without_a_leader_it_waits_briefly_and_then_announces() -> None:
    h = Harness()
    h.raft.leader = None
    assert h.cycles(1) == [("waiting for a leader", 0.05)]
    h.raft.leader = "n1"
    assert h.cycles(1)[0][0].startswith("announced")


def test_a_failed_commit_is_said_and_retried_after_a_moment() -> None:
    h = Harness()
    h.loop.worker_urls = []
    h.raft.state.auth_required = True
    h.fail_commits = CommitError("no_leader", "no leader")
    sentence, pause = h.cycles(1)[0]
    assert sentence.startswith("announcing this node failed (")
    assert pause == 0.0  # the next cycle looks for other duties at once
    assert h.cycles(1)[0] == ("retrying announcing this node", 0.5)
    h.fail_commits = None
    h.loop._failed_at["announce"] -= 1.0  # its back-off is over
    assert h.cycles(1)[0][0].startswith("announced")


def test_a_refused_announce_does_not_hold_up_registering_workers() -> None:
    h = Harness()
    h.raft.state.auth_required = True
    h.fail_commits = CommitError("conflict", "refused")  # every commit: announce fails
    said = [s for s, _ in h.cycles(3)]
    assert said[0].startswith("announcing this node failed")
    assert said[1:] == ["registered worker http://w1", "registered worker http://w2"]


def test_only_a_plan_for_this_run_is_followed_and_only_once() -> None:
    h = Harness()
    earlier = {"id": "p0", "requested_by": "ops", "targets": {"n2": "boot-1"}}
    h.raft.state.shutdowns["p0"] = earlier  # replayed from the journal after a restart
    assert decide(h.loop.view()).kind == "announce"
    h.raft.state.shutdowns["p1"] = {"id": "p1", "requested_by": "ops", "targets": {"n2": "boot-2"}}
    sentence, _ = h.cycles(1)[0]
    assert sentence == "carrying out shutdown plan p1 from ops"
    assert h.stopper.followed == ["p1"]
    assert h.cycles(1)[0][0] == "stopping: draining"  # nothing else once stopping


def test_a_plan_is_followed_as_it_is_applied_and_only_once() -> None:
    h = Harness()
    h.raft.state.shutdowns["p1"] = {"id": "p1", "requested_by": "ops", "targets": {"n2": "boot-2"}}
    h.loop.follow_plans()
    h.loop.follow_plans()
    assert h.stopper.followed == ["p1"]
    assert decide(h.loop.view()).kind == "stopping"


def test_as_leader_it_resumes_its_jobs_adopts_stranded_ones_and_seals_keys() -> None:
    now = time.time()
    workers = {
        "mine": {"status": "pending", "created_by": "node:n2", "updated_at": now},
        "stranded": {"status": "pending", "created_by": "node:n9", "updated_at": now - 60},
        "fresh": {"status": "pending", "created_by": "node:n9", "updated_at": now},
        "clear": {"status": "ready", "api_key": "sk-plain", "version": 3, "updated_at": now},
    }
    h = Harness(workers)
    h.loop.announced = True
    h.raft.state.auth_required = True
    h.loop.worker_urls = []
    h.raft.role = "leader"
    said = [s for s, _ in h.cycles(3)]
    assert said == [
        "resumed 1 discovery job(s) this node started",
        "adopted 1 stranded discovery job(s)",
        "sealed the api_key of worker clear",
    ]
    assert h.discovery.started == ["mine", "stranded"]
    op, args = h.commits[-1]
    assert op == "worker.update" and args["expected_version"] == 3
    assert args["changes"]["api_key"] != "sk-plain"
