"""The plane link's messages carry every field of what they stand for (node/plane/codec.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mesh.raft import NOT_COMMITTED, CommitError, PeerStatus, RaftSettings, RaftStatus
from node.plane import codec
from node.plane.facts import PlaneFacts, WorkerFacts


def test_a_status_crosses_whole_and_judges_the_same() -> None:
    status = RaftStatus(
        self_address="10.0.0.1:4321",
        role="follower",
        leader="10.0.0.2:4321",
        term=7,
        commit_index=40,
        applied_index=39,
        leader_commit_index=41,
        has_quorum=True,
        log_len=12,
        ready=True,
        peers=(
            PeerStatus("10.0.0.2:4321", True, 40, 41),
            PeerStatus("10.0.0.3:4321", False, None, None),
        ),
        readonly_nodes=1,
        unappliable_entries=2,
        refused_connections=3,
        last_leader_contact=123.5,
        last_leader_contact_wall=1.7e9,
        stale_after=2.5,
        solo=False,
        dead_links=4,
        snapshots_sent=5,
    )
    back = codec.raft_status(codec.status_message(status, state_applied_index=38))
    assert dataclasses.replace(back, updated_at=status.updated_at) == status
    for judged in ("caught_up", "stale", "cut_off", "behind_by"):
        assert getattr(back, judged) == getattr(status, judged), judged


def test_an_unknown_leader_and_contact_stay_unknown() -> None:
    back = codec.raft_status(codec.status_message(RaftStatus.starting(None), 0))
    assert (back.self_address, back.leader, back.leader_commit_index) == (None, None, None)
    assert back.last_leader_contact is None and not back.caught_up


def test_a_commit_error_crosses_whole() -> None:
    error = CommitError(
        "no_quorum",
        "no majority",
        2.5,
        outcome=NOT_COMMITTED,
        request_id="r1",
        expires_at=99.5,
        timed_out=True,
    )
    back = codec.commit_error(codec.error_message(error))
    assert vars(back) == vars(error) and str(back) == str(error)
    bare = codec.commit_error(codec.error_message(CommitError("x", "y")))
    assert (bare.request_id, bare.expires_at) == (None, None)


def test_facts_and_settings_cross_whole(tmp_path: Path) -> None:
    facts = PlaneFacts(
        {
            "w1": WorkerFacts("unhealthy", "refused", "open"),
            "w2": WorkerFacts("unknown", "", "closed"),
        },
        draining=True,
        shutting_down=True,
    )
    assert codec.plane_facts(codec.facts_message(facts)) == facts
    settings = RaftSettings(
        data_dir=tmp_path,
        self_address="10.0.0.1:4321",
        peers=("10.0.0.2:4321",),
        password="never-sent",
        commit_timeout=4.0,
        clock_skew_allowance=0.5,
        stale_after=3.0,
    )
    back = codec.raft_settings(codec.settings_message(settings), tmp_path)
    assert back == dataclasses.replace(settings, password=None)
