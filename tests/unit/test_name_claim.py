"""Who may take a node name: a live holder with another boot id keeps it."""

from __future__ import annotations

from node.ha.name_claim import conflict, record_to_check

RECORD = {"name": "gw1", "raft_address": "10.0.0.1:4321", "boot_id": "old", "http_url": "http://a"}


def test_only_a_record_left_by_another_run_is_checked() -> None:
    members = {"gw1": RECORD}
    assert record_to_check(members, "gw1", "new", set()) is RECORD
    assert record_to_check(members, "gw1", "old", set()) is None  # ours
    assert record_to_check(members, "gw1", "new", {"old"}) is None  # found gone already
    assert record_to_check(members, "gw2", "new", set()) is None  # nobody holds it


def test_a_holder_that_answers_with_its_own_boot_id_keeps_the_name() -> None:
    report = {"name": "gw1", "boot_id": "old"}
    problem = conflict("gw1", "10.0.0.2:4321", "new", RECORD, report)
    assert problem is not None
    for named in ("'gw1'", "10.0.0.1:4321", "10.0.0.2:4321", "old", "new", "--node-name"):
        assert named in problem


def test_a_restart_takes_its_name_over() -> None:
    # the old run is gone, the URL answers for this run, or for another name
    assert conflict("gw1", "10.0.0.1:4321", "new", RECORD, None) is None
    assert (
        conflict("gw1", "10.0.0.1:4321", "new", RECORD, {"name": "gw1", "boot_id": "new"}) is None
    )
    assert conflict("gw1", "10.0.0.1:4321", "new", RECORD, {"name": "gw9", "boot_id": "x"}) is None
