"""A command its proposer gave up on cannot land late (issue 8, fault 1): the rule in
`ControlState.apply`, the request memory it relies on, and the leader's stamp.

`exp` is the proposer's expiry, `lt` the leader's clock when it took the command into
its log; `log_time` is the latest stamp applied. A stamped command is refused as
`expired` once `log_time` (its own stamp included) is past its expiry.
"""

from __future__ import annotations

import pickle
from typing import Any

import pysyncobj.pickle

from mesh import state as state_module
from mesh.commands import LONGEST_WAIT, make
from mesh.stamping import stamp_entry
from mesh.state import REQUESTS_KEPT, REQUESTS_KEPT_MOST, REQUESTS_KEPT_SECS, ControlState


def command(key: str, value: Any, *, rid: str, exp: float | None, lt: float | None) -> Any:
    cmd = make("config.set", {"key": key, "value": value}, by="n1/admin", rid=rid)
    if exp is not None:
        cmd["exp"] = exp
    if lt is not None:
        cmd["lt"] = lt
    return cmd


def test_a_command_stamped_before_its_expiry_applies_and_is_remembered() -> None:
    s = ControlState()
    outcome = s.apply(command("k", 1, rid="a", exp=103.0, lt=100.5), 1)
    assert outcome["ok"]
    assert s.log_time == 100.5
    assert s.requests["a"] == {
        "outcome": outcome,
        "index": 1,
        "log_time": 100.5,
        "expires_at": 103.0,
        "at": s.requests["a"]["at"],
    }


def test_a_command_stamped_after_its_expiry_changes_nothing_and_frees_its_id() -> None:
    s = ControlState()
    late = s.apply(command("k", 1, rid="a", exp=103.0, lt=103.2), 1)
    assert late["ok"] is False and late["error"] == "expired"
    assert late["expires_at"] == 103.0 and late["log_time"] == 103.2
    assert "NTP" in late["message"]
    assert s.config == {} and "a" not in s.requests
    assert s.log_time == 103.2  # the stamp still moves the log's clock
    # A new attempt under the same id (a client's retry with its Idempotency-Key) applies.
    assert s.apply(command("k", 2, rid="a", exp=110.0, lt=107.0), 2)["ok"]
    assert s.config["k"]["value"] == 2


def test_expiry_is_judged_against_the_log_clock_not_the_stamp_alone() -> None:
    """A leader with a slow clock stamps 101, but the log has already passed 104: any
    copy expiring at 103 is refused from then on, on every node alike."""
    s = ControlState()
    assert s.apply(command("other", 0, rid="x", exp=110.0, lt=104.0), 1)["ok"]
    outcome = s.apply(command("k", 1, rid="a", exp=103.0, lt=101.0), 2)
    assert outcome["error"] == "expired" and s.log_time == 104.0
    assert "k" not in s.config


def test_fault_1_a_stale_write_cannot_overwrite_the_acknowledged_retry() -> None:
    """Issue 8, fault 1, as the log sees it: a follower forwarded `k=stale` (expiring at
    103) just before it was cut off, and answered "unknown" at 104 (103 + the 1 s clock
    allowance); the client retried `k=fresh` through the majority (stamped 105, acked);
    TCP delivered the stale command after the heal, and the leader stamped it at 130."""
    s = ControlState()
    assert s.apply(command("k", "fresh", rid="retry", exp=108.0, lt=105.0), 1)["ok"]
    stale = s.apply(command("k", "stale", rid="first", exp=103.0, lt=130.0), 2)
    assert stale["error"] == "expired"
    assert s.config["k"]["value"] == "fresh" and s.config["k"]["version"] == 1


def test_a_late_copy_of_an_applied_request_answers_the_first_outcome() -> None:
    s = ControlState()
    cmd = command("k", 1, rid="a", exp=103.0, lt=100.0)
    first = s.apply(cmd, 1)
    late_copy = {**cmd, "lt": 140.0}  # our own resubmission, logged long after
    assert s.apply(late_copy, 2) == first
    assert s.config["k"]["version"] == 1


def test_another_attempt_with_the_same_id_is_marked_replayed() -> None:
    s = ControlState()
    first = s.apply(command("k", 1, rid="idem-x", exp=103.0, lt=100.0), 1)
    retry = command("k", 1, rid="idem-x", exp=109.0, lt=106.0)
    retry["at"] = first_at = s.requests["idem-x"]["at"] + 5  # made later, elsewhere
    assert first_at != s.requests["idem-x"]["at"]
    assert s.apply(retry, 2) == {**first, "replayed": True}


def test_entries_without_stamp_or_expiry_apply_as_before() -> None:
    """Old journal entries carry neither; a leader of an older version does not stamp."""
    s = ControlState()
    assert s.apply(command("k", 1, rid="old", exp=None, lt=None), 1)["ok"]
    assert s.apply(command("k", 2, rid="unstamped", exp=1.0, lt=None), 2)["ok"]
    assert s.config["k"]["value"] == 2 and s.log_time == 0.0
    assert s.requests["unstamped"]["expires_at"] is None


def test_an_expiry_far_beyond_the_leader_stamp_is_refused() -> None:
    s = ControlState()
    outcome = s.apply(command("k", 1, rid="a", exp=100.0 + 3 * LONGEST_WAIT, lt=100.0), 1)
    assert outcome["error"] == "invalid" and "clock" in outcome["message"]
    assert s.config == {} and "a" not in s.requests


def test_memory_keeps_ids_for_ten_minutes_of_log_time_beyond_the_last_4096() -> None:
    s = ControlState()
    count = REQUESTS_KEPT + 100
    for i in range(count):  # ten commands a second: 420 s of log time
        s.apply(command("k", i, rid=f"r{i}", exp=i / 10 + 3.0, lt=i / 10), i + 1)
    assert len(s.requests) == count
    assert s.forgotten == {"index": 0, "log_time": None}


def test_memory_forgets_what_is_older_than_its_window_once_over_4096() -> None:
    s = ControlState()
    total = 10_000
    for i in range(total):  # ten commands a second: 1000 s of log time
        s.apply(command("k", i, rid=f"r{i}", exp=i / 10 + 3.0, lt=i / 10), i + 1)
    now = s.log_time
    oldest = next(iter(s.requests.values()))
    assert now - oldest["log_time"] <= REQUESTS_KEPT_SECS
    assert len(s.requests) == REQUESTS_KEPT_SECS * 10 + 1  # more than REQUESTS_KEPT
    assert now - s.forgotten["log_time"] > REQUESTS_KEPT_SECS
    # Every id applied after the newest forgotten one is still remembered.
    assert f"r{s.forgotten['index']}" in s.requests
    assert f"r{s.forgotten['index'] - 1}" not in s.requests


def test_memory_never_forgets_an_id_a_late_copy_could_still_use(monkeypatch: Any) -> None:
    monkeypatch.setattr(state_module, "REQUESTS_KEPT_SECS", 1.0)
    s = ControlState()
    assert s.apply(command("k", 0, rid="long", exp=100.0, lt=0.0), 1)["ok"]
    for i in range(1, REQUESTS_KEPT + 50):
        s.apply(command("k", i, rid=f"r{i}", exp=i / 100 + 3, lt=i / 100), i + 1)
    assert "long" in s.requests  # log time is ~41 s, its expiry 100 s
    assert len(s.requests) == REQUESTS_KEPT + 50
    # Once the log's clock passes its expiry, no copy can apply: it (and the rest) may go.
    s.apply(command("k", -1, rid="late", exp=103.0, lt=100.5), REQUESTS_KEPT + 100)
    assert "long" not in s.requests and len(s.requests) == REQUESTS_KEPT


def test_memory_is_bounded_whatever_the_rate(monkeypatch: Any) -> None:
    monkeypatch.setattr(state_module, "REQUESTS_KEPT_MOST", REQUESTS_KEPT + 10)
    s = ControlState()
    for i in range(REQUESTS_KEPT + 40):  # all in the same second, none expired
        s.apply(command("k", i, rid=f"r{i}", exp=100.0, lt=50.0), i + 1)
    assert len(s.requests) == REQUESTS_KEPT + 10
    assert REQUESTS_KEPT_MOST >= 4 * REQUESTS_KEPT  # the real bound leaves room


def test_a_snapshot_from_before_request_records_keeps_its_ids() -> None:
    old = ControlState()
    del old.requests, old.log_time, old.forgotten  # as unpickled from an old snapshot
    old.recent = {"r1": {"ok": True, "value": {"key": "k", "version": 1}}}
    restored = pickle.loads(pickle.dumps(old))
    assert restored.apply(command("k", 9, rid="r1", exp=None, lt=None), 5) == {
        "ok": True,
        "value": {"key": "k", "version": 1},
    }
    assert restored.recent == {} and "r1" in restored.requests
    assert ControlState.requests == {}  # the class-level default was not written to
    assert restored.apply(command("k", 9, rid="r2", exp=9.0, lt=8.0), 6)["ok"]
    assert restored.log_time == 8.0


def test_leader_stamp_rewrites_the_command_inside_the_pickled_call() -> None:
    cmd = command("k", 1, rid="a", exp=103.0, lt=1.0)  # a stamp from a proposer is replaced
    entry = b"\x00" + pysyncobj.pickle.dumps((0, (cmd,)))
    stamped = stamp_entry(entry, 100.25)
    method, (inside,) = pickle.loads(stamped[1:])
    assert method == 0 and inside == {**cmd, "lt": 100.25}


def test_leader_stamp_leaves_other_entries_alone() -> None:
    no_op, membership = b"\x01", b"\x02" + b"add127.0.0.1:1"
    junk = b"\x00" + b"not a pickle"
    two_args = b"\x00" + pysyncobj.pickle.dumps((0, ({}, {})))
    for entry in (no_op, membership, junk, two_args, b""):
        assert stamp_entry(entry, 1.0) == entry
