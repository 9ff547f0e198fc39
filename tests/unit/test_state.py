"""Unit tests of the replicated control state (`mesh/state.py`) and its commands.

The state machine is pure: every test builds commands with `commands.make` and
applies them to a fresh `ControlState` with explicit log indexes.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh import commands, state
from mesh.commands import ALL_OPS, ERRORS, make
from mesh.state import RECENT_REQUESTS_KEPT, ControlState

URL = "http://10.0.0.1:8000"


class Log:
    """A state plus a log index that grows by one per applied command."""

    def __init__(self) -> None:
        self.state = ControlState()
        self.index = 0

    def run(self, op: str, args: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
        self.index += 1
        return self.state.apply(make(op, args, by="t", rid=rid), self.index)

    def add(self, worker_id: str = "w1", url: str = URL, **fields: Any) -> dict[str, Any]:
        return self.run("worker.add", {"worker": {"id": worker_id, "url": url, **fields}})


def snapshot(s: ControlState) -> dict[str, Any]:
    """Everything a command may change, deep-copied (the applied index aside)."""
    return copy.deepcopy(
        {
            "workers": s.workers,
            "worker_urls": s.worker_urls,
            "policies": s.policies,
            "config": s.config,
        }
    )


def assert_failed(outcome: dict[str, Any], error: str) -> None:
    assert outcome["ok"] is False, outcome
    assert outcome["error"] == error, outcome
    assert isinstance(outcome["message"], str) and outcome["message"]


# --- worker.add ------------------------------------------------------------------------


def test_worker_add_record_defaults() -> None:
    log = Log()
    outcome = log.add()
    assert outcome == {"ok": True, "value": {"worker_id": "w1", "version": 1}}
    record = log.state.workers["w1"]
    assert record["id"] == "w1"
    assert record["url"] == URL
    assert record["status"] == "pending"
    assert record["priority"] == 50
    assert record["cost"] == 1.0
    assert record["worker_type"] == "regular"
    assert record["connection_mode"] == "http"
    assert record["model_id"] is None
    assert record["labels"] == {}
    assert record["api_key"] is None
    assert record["metadata"] == {}
    assert record["job_status"]["state"] == "queued"
    assert record["version"] == 1
    assert record["created_by"] == "t"
    assert record["updated_by"] == "t"
    assert log.state.worker_urls == {URL: "w1"}
    assert log.state.counts() == {
        "workers": 1,
        "policies": 0,
        "config": 0,
        "members": 0,
        "rate_limits": 0,
        "shutdown_plans": 0,
        "tenants": 0,
        "api_keys": 0,
        "models": 0,
        "published_models": 0,
        "tokenizers": 0,
        "wasm_modules": 0,
    }


def test_worker_add_keeps_given_fields() -> None:
    log = Log()
    labels = {"zone": "a"}
    assert log.add(
        model_id="m",
        worker_type="prefill",
        runtime="vllm",
        priority=7,
        cost=2.5,
        labels=labels,
        api_key="k",
        bootstrap_port=8998,
    )["ok"]
    record = log.state.workers["w1"]
    assert record["bootstrap_port"] == 8998
    assert (record["model_id"], record["worker_type"], record["runtime"]) == (
        "m",
        "prefill",
        "vllm",
    )
    assert (record["priority"], record["cost"], record["api_key"]) == (7, 2.5, "k")
    assert record["labels"] == {"zone": "a"}
    labels["zone"] = "changed"  # the record holds its own copy of the labels
    assert record["labels"] == {"zone": "a"}


def test_worker_add_duplicate_url_conflicts_with_existing_id() -> None:
    log = Log()
    log.add("w1")
    before = snapshot(log.state)
    outcome = log.add("w2")
    assert_failed(outcome, "conflict")
    assert outcome["worker_id"] == "w1"
    assert snapshot(log.state) == before


def test_worker_add_duplicate_id_conflicts() -> None:
    log = Log()
    log.add("w1")
    before = snapshot(log.state)
    outcome = log.add("w1", url="http://10.0.0.2:8000")
    assert_failed(outcome, "conflict")
    assert outcome["worker_id"] == "w1"
    assert snapshot(log.state) == before
    assert "http://10.0.0.2:8000" not in log.state.worker_urls


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": -1},
        {"priority": 1_000_001},
        {"priority": "5"},
        {"priority": True},
        {"priority": 1.5},
        {"cost": -0.1},
        {"cost": float("nan")},
        {"cost": float("inf")},
        {"cost": "1"},
        {"cost": False},
        {"worker_type": "other"},
        {"worker_type": None},
        {"model_id": 5},
        {"runtime": ["vllm"]},
        {"labels": {"a": 1}},
        {"labels": {1: "a"}},
        {"labels": "a=b"},
        {"api_key": 123},
        {"bootstrap_port": 0},
        {"bootstrap_port": 65536},
        {"bootstrap_port": "8998"},
        {"bootstrap_port": True},
    ],
    ids=repr,
)
def test_worker_add_invalid_field_changes_nothing(fields: dict[str, Any]) -> None:
    log = Log()
    log.add("w0", url="http://10.0.0.9:1")
    before = snapshot(log.state)
    assert_failed(log.add(**fields), "invalid")
    assert snapshot(log.state) == before


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"worker": None},
        {"worker": "w1"},
        {"worker": {"url": URL}},
        {"worker": {"id": "w1"}},
        {"worker": {"id": "w1", "url": ""}},
        {"worker": {"id": 1, "url": URL}},
        {"worker": {"id": "w1", "url": 1}},
    ],
    ids=repr,
)
def test_worker_add_needs_id_and_url(args: dict[str, Any]) -> None:
    log = Log()
    assert_failed(log.run("worker.add", args), "invalid")
    assert log.state.workers == {} and log.state.worker_urls == {}


# --- worker.update ---------------------------------------------------------------------


def test_worker_update_applies_changes_and_sets_version() -> None:
    log = Log()
    log.add()
    outcome = log.run(
        "worker.update", {"id": "w1", "changes": {"priority": 9, "labels": {"a": "b"}}}
    )
    assert outcome == {"ok": True, "value": {"worker_id": "w1", "version": 2}}
    record = log.state.workers["w1"]
    assert record["priority"] == 9
    assert record["labels"] == {"a": "b"}
    assert record["version"] == 2
    assert record["url"] == URL and record["status"] == "pending"  # untouched
    assert record["created_at"] <= record["updated_at"]


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "http://other:1"},
        {"id": "w2"},
        {"status": "ready"},
        {"version": 99},
        {"nonsense": 1},
        {"priority": "high"},
        {"cost": -1},
        {"worker_type": "gpu"},
        {"labels": ["a"]},
        {"priority": 1, "bogus": 2},
        {},
        None,
        "priority=1",
    ],
    ids=repr,
)
def test_worker_update_rejects_unknown_or_bad_fields(changes: Any) -> None:
    log = Log()
    log.add()
    before = snapshot(log.state)
    assert_failed(log.run("worker.update", {"id": "w1", "changes": changes}), "invalid")
    assert snapshot(log.state) == before


def test_worker_update_unknown_id_is_not_found() -> None:
    log = Log()
    log.add()
    before = snapshot(log.state)
    assert_failed(log.run("worker.update", {"id": "nope", "changes": {"priority": 1}}), "not_found")
    assert_failed(log.run("worker.update", {"changes": {"priority": 1}}), "not_found")
    assert snapshot(log.state) == before


def test_worker_update_expected_version() -> None:
    log = Log()
    log.add()  # version 1
    before = snapshot(log.state)
    outcome = log.run(
        "worker.update", {"id": "w1", "changes": {"priority": 1}, "expected_version": 7}
    )
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 1
    assert ERRORS["version_mismatch"] == 409
    assert snapshot(log.state) == before
    for bad in (-1, "1", True, 1.0):
        outcome = log.run(
            "worker.update", {"id": "w1", "changes": {"priority": 1}, "expected_version": bad}
        )
        assert_failed(outcome, "invalid")
    assert snapshot(log.state) == before
    outcome = log.run(
        "worker.update", {"id": "w1", "changes": {"priority": 1}, "expected_version": 1}
    )
    assert outcome["ok"] is True
    assert log.state.workers["w1"]["version"] == log.index


# --- worker.set_status -------------------------------------------------------------------


def test_set_status_changes_status_job_and_metadata() -> None:
    log = Log()
    log.add()
    job = {"state": "done", "message": "ok", "attempts": 1}
    outcome = log.run(
        "worker.set_status",
        {"id": "w1", "status": "ready", "job_status": job, "metadata": {"n": 1}},
    )
    assert outcome == {"ok": True, "value": {"worker_id": "w1", "status": "ready", "version": 2}}
    record = log.state.workers["w1"]
    assert record["status"] == "ready"
    assert record["job_status"] == job
    assert record["metadata"] == {"n": 1}
    assert record["version"] == 2


def test_set_status_rejects_unknown_status_and_unknown_worker() -> None:
    log = Log()
    log.add()
    before = snapshot(log.state)
    assert_failed(log.run("worker.set_status", {"id": "w1", "status": "broken"}), "invalid")
    assert_failed(log.run("worker.set_status", {"id": "w9", "status": "ready"}), "not_found")
    assert snapshot(log.state) == before


@pytest.mark.parametrize("target", ["ready", "pending", "failed"])
def test_draining_worker_cannot_leave_draining(target: str) -> None:
    log = Log()
    log.add()
    assert log.run("worker.set_status", {"id": "w1", "status": "draining"})["ok"]
    before = snapshot(log.state)
    assert_failed(log.run("worker.set_status", {"id": "w1", "status": target}), "conflict")
    assert snapshot(log.state) == before
    assert log.state.workers["w1"]["status"] == "draining"
    # Draining again is allowed (idempotent).
    assert log.run("worker.set_status", {"id": "w1", "status": "draining"})["ok"]


def test_discovered_model_id_fills_only_a_missing_one() -> None:
    log = Log()
    log.add("w1")
    log.add("w2", url="http://10.0.0.2:8000", model_id="explicit")
    log.run("worker.set_status", {"id": "w1", "status": "ready", "model_id": "found"})
    log.run("worker.set_status", {"id": "w2", "status": "ready", "model_id": "found"})
    assert log.state.workers["w1"]["model_id"] == "found"
    assert log.state.workers["w2"]["model_id"] == "explicit"
    # Once filled, a later discovery does not override it either.
    log.run("worker.set_status", {"id": "w1", "status": "ready", "model_id": "other"})
    assert log.state.workers["w1"]["model_id"] == "found"


# --- worker.remove ---------------------------------------------------------------------


def test_worker_remove_frees_the_url() -> None:
    log = Log()
    log.add("w1")
    assert log.run("worker.remove", {"id": "w1"}) == {
        "ok": True,
        "value": {"worker_id": "w1", "version": 2},
    }
    assert log.state.workers == {} and log.state.worker_urls == {}
    assert_failed(log.run("worker.remove", {"id": "w1"}), "not_found")
    assert log.add("w2")["ok"]
    assert log.state.worker_urls == {URL: "w2"}


# --- policies ----------------------------------------------------------------------------


def test_policy_set_and_delete() -> None:
    log = Log()
    outcome = log.run("policy.set", {"model": "m", "policy": "round_robin"})
    assert outcome == {"ok": True, "value": {"model_id": "m", "version": 1}}
    assert log.state.policies["m"]["policy"] == "round_robin"
    assert log.state.policies["m"]["params"] == {}
    log.run("policy.set", {"model": "*", "policy": "random", "params": {"x": 1}})
    assert log.state.policy_for("m")["policy"] == "round_robin"
    assert log.state.policy_for("other")["policy"] == "random"
    assert log.state.policy_for(None)["policy"] == "random"

    assert log.run("policy.delete", {"model": "m"})["ok"]
    assert "m" not in log.state.policies
    assert log.state.policy_for("m")["policy"] == "random"
    assert_failed(log.run("policy.delete", {"model": "m"}), "not_found")


@pytest.mark.parametrize(
    "args",
    [
        {"policy": "random"},
        {"model": "", "policy": "random"},
        {"model": 1, "policy": "random"},
        {"model": "m"},
        {"model": "m", "policy": 3},
        {"model": "m", "policy": "random", "params": None},
        {"model": "m", "policy": "random", "params": [1]},
        {"model": "m", "policy": "random", "expected_version": "x"},
    ],
    ids=repr,
)
def test_policy_set_invalid(args: dict[str, Any]) -> None:
    log = Log()
    assert_failed(log.run("policy.set", args), "invalid")
    assert log.state.policies == {}


def test_policy_set_expected_version() -> None:
    log = Log()
    outcome = log.run("policy.set", {"model": "m", "policy": "random", "expected_version": 5})
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 0
    assert log.run("policy.set", {"model": "m", "policy": "random", "expected_version": 0})["ok"]
    outcome = log.run("policy.set", {"model": "m", "policy": "random", "expected_version": 0})
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 2


# --- config --------------------------------------------------------------------------------


def test_config_set_and_delete() -> None:
    log = Log()
    outcome = log.run("config.set", {"key": "k", "value": {"a": [1, 2]}})
    assert outcome == {"ok": True, "value": {"key": "k", "version": 1}}
    record = log.state.config["k"]
    assert record["value"] == {"a": [1, 2]}
    assert record["version"] == 1 and record["updated_by"] == "t"
    assert log.run("config.set", {"key": "k", "value": None})["ok"]
    assert log.state.config["k"]["value"] is None
    assert log.state.config["k"]["version"] == 2
    assert log.run("config.delete", {"key": "k"}) == {
        "ok": True,
        "value": {"key": "k", "version": 3},
    }
    assert log.state.config == {}
    assert_failed(log.run("config.delete", {"key": "k"}), "not_found")
    assert_failed(log.run("config.delete", {"key": 5}), "not_found")
    assert_failed(log.run("config.set", {"key": "", "value": 1}), "invalid")
    assert_failed(log.run("config.set", {"value": 1}), "invalid")


def test_config_expected_version_zero_means_must_not_exist() -> None:
    log = Log()
    assert log.run("config.set", {"key": "k", "value": 1, "expected_version": 0})["ok"]
    outcome = log.run("config.set", {"key": "k", "value": 2, "expected_version": 0})
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 1
    assert log.state.config["k"]["value"] == 1


def test_config_set_compare_and_set() -> None:
    log = Log()
    log.run("config.set", {"key": "k", "value": 1})  # version 1
    outcome = log.run("config.set", {"key": "k", "value": 2, "expected_version": 2})
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 1
    assert log.state.config["k"]["value"] == 1
    assert log.run("config.set", {"key": "k", "value": 3, "expected_version": 1})["ok"]
    assert log.state.config["k"] == {
        "key": "k",
        "value": 3,
        "version": 3,
        "updated_at": log.state.config["k"]["updated_at"],
        "updated_by": "t",
    }
    # Never-written key with a positive expectation: mismatch against version 0.
    outcome = log.run("config.set", {"key": "new", "value": 1, "expected_version": 4})
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 0
    assert "new" not in log.state.config


def test_config_delete_expected_version() -> None:
    log = Log()
    log.run("config.set", {"key": "k", "value": 1})  # version 1
    outcome = log.run("config.delete", {"key": "k", "expected_version": 0})
    assert_failed(outcome, "version_mismatch")
    assert outcome["current_version"] == 1
    outcome = log.run("config.delete", {"key": "k", "expected_version": 9})
    assert_failed(outcome, "version_mismatch")
    assert "k" in log.state.config
    assert log.run("config.delete", {"key": "k", "expected_version": 1})["ok"]
    assert "k" not in log.state.config


# --- request-id dedup ------------------------------------------------------------------------


def test_same_command_twice_returns_first_outcome_and_changes_nothing() -> None:
    s = ControlState()
    cmd = make("config.set", {"key": "k", "value": 1}, by="t")
    first = s.apply(cmd, 1)
    assert first["ok"]
    before = snapshot(s)
    requests_before = copy.deepcopy(s.requests)
    again = s.apply(cmd, 2)
    assert again == first  # the same attempt (our own resubmission): not marked replayed
    assert snapshot(s) == before
    assert s.config["k"]["version"] == 1
    assert s.requests == requests_before


def test_retried_failure_is_answered_the_same_even_after_state_changes() -> None:
    log = Log()
    first = log.run("worker.remove", {"id": "w1"}, rid="r1")
    assert_failed(first, "not_found")
    log.add("w1")
    # Another attempt with the same request id (a client's retry): marked as a replay.
    assert log.run("worker.remove", {"id": "w1"}, rid="r1") == {**first, "replayed": True}
    assert "w1" in log.state.workers


def test_same_rid_for_worker_add_does_not_add_twice() -> None:
    log = Log()
    first = log.run("worker.add", {"worker": {"id": "w1", "url": URL}}, rid="r")
    before = snapshot(log.state)
    again = log.run("worker.add", {"worker": {"id": "w1", "url": URL}}, rid="r")
    # not a conflict: the retry gets the first answer
    assert again == {**first, "replayed": True} and again["ok"]
    assert snapshot(log.state) == before


def test_dedup_memory_is_bounded() -> None:
    s = ControlState()
    first = make("config.set", {"key": "k", "value": "first"}, by="t", rid="rid-0")
    assert s.apply(first, 1)["ok"]
    for i in range(1, RECENT_REQUESTS_KEPT + 1):
        s.apply(make("config.set", {"key": f"k{i % 3}", "value": i}, by="t", rid=f"rid-{i}"), i + 1)
    assert len(s.requests) == RECENT_REQUESTS_KEPT
    assert "rid-0" not in s.requests  # the oldest one is forgotten first
    assert "rid-1" in s.requests and f"rid-{RECENT_REQUESTS_KEPT}" in s.requests
    assert s.forgotten == {"index": 1, "log_time": None}
    # A forgotten rid is applied again (as a new command).
    s.config = {}
    assert s.apply(first, RECENT_REQUESTS_KEPT + 2)["ok"]
    assert s.config["k"]["version"] == RECENT_REQUESTS_KEPT + 2


# --- malformed envelopes and garbage args ------------------------------------------------


def _envelope(**overrides: Any) -> dict[str, Any]:
    cmd = make("config.set", {"key": "k", "value": 1}, by="t")
    cmd.update(overrides)
    return cmd


@pytest.mark.parametrize(
    "command",
    [
        None,
        "config.set",
        42,
        ["config.set"],
        {},
        _envelope(op="config.drop"),
        _envelope(op=None),
        _envelope(op=["x"]),
        _envelope(rid=None),
        _envelope(rid=""),
        _envelope(rid=5),
        _envelope(at="now"),
        _envelope(at=None),
        _envelope(by=None),
        _envelope(args=None),
        _envelope(args=[("key", "k")]),
        _envelope(args="key=k"),
        _envelope(exp="soon"),
        _envelope(exp=float("nan")),
        _envelope(exp=True),
        _envelope(lt=None),
        _envelope(lt=float("inf")),
        {k: v for k, v in _envelope().items() if k != "rid"},
        {k: v for k, v in _envelope().items() if k != "args"},
    ],
    ids=repr,
)
def test_malformed_envelope_is_invalid_and_never_raises(command: Any) -> None:
    s = ControlState()
    before = snapshot(s)
    outcome = s.apply(command, 1)
    assert_failed(outcome, "invalid")
    assert snapshot(s) == before
    assert s.requests == {}


def test_make_refuses_unknown_op() -> None:
    with pytest.raises(ValueError, match="unknown command op"):
        make("worker.explode", {}, by="t")


def test_make_stamps_envelope() -> None:
    cmd = make("config.set", {"key": "k"}, by="me")
    assert set(cmd) == {"op", "rid", "at", "by", "args"}
    assert cmd["by"] == "me" and cmd["op"] == "config.set"
    assert isinstance(cmd["rid"], str) and len(cmd["rid"]) == 32
    assert make("config.set", {}, by="me")["rid"] != cmd["rid"]
    assert make("config.set", {}, by="me", rid="fixed")["rid"] == "fixed"
    assert commands.envelope_problem(cmd) is None


_KEYS = st.sampled_from(
    [
        "id",
        "url",
        "worker",
        "changes",
        "status",
        "job_status",
        "metadata",
        "model_id",
        "model",
        "policy",
        "params",
        "key",
        "value",
        "expected_version",
        "priority",
        "cost",
        "labels",
        "worker_type",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["w1", "w2", URL, "ready", "draining", "m", "*", "k", "regular"])
    | st.binary(max_size=4)
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(_KEYS | st.text(max_size=4) | st.integers(), inner, max_size=4)
    )


_VALUES = st.recursive(_SCALARS, _containers, max_leaves=10)
_ARGS = st.dictionaries(_KEYS, _VALUES, max_size=6)


def _populated() -> Log:
    log = Log()
    log.add("w1", model_id="m")
    log.add("w2", url="http://10.0.0.2:8000")
    log.run("worker.set_status", {"id": "w2", "status": "draining"})
    log.run("policy.set", {"model": "m", "policy": "random"})
    log.run("config.set", {"key": "k", "value": [1]})
    return log


@pytest.mark.parametrize("op", ALL_OPS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=_ARGS)
def test_apply_never_raises_on_garbage_args(op: str, args: dict[str, Any]) -> None:
    log = _populated()
    before = snapshot(log.state)
    outcome = log.state.apply(make(op, args, by="t"), 100)
    assert isinstance(outcome, dict)
    assert isinstance(outcome["ok"], bool)
    if not outcome["ok"]:
        assert outcome["error"] in ERRORS
        assert snapshot(log.state) == before  # a failed command changes nothing
    assert log.state.applied_index == 100


# --- copy-on-write, determinism, pickling ---------------------------------------------------


def test_apply_is_copy_on_write() -> None:
    log = _populated()
    s = log.state
    maps = {
        "workers": s.workers,
        "worker_urls": s.worker_urls,
        "policies": s.policies,
        "config": s.config,
    }
    frozen = copy.deepcopy(maps)
    record = s.workers["w1"]
    frozen_record = copy.deepcopy(record)

    log.run("worker.update", {"id": "w1", "changes": {"priority": 1, "labels": {"x": "y"}}})
    log.run("worker.set_status", {"id": "w1", "status": "ready", "metadata": {"a": 1}})
    log.add("w3", url="http://10.0.0.3:8000")
    log.run("worker.remove", {"id": "w2"})
    log.run("policy.set", {"model": "m", "policy": "round_robin"})
    log.run("policy.delete", {"model": "m"})
    log.run("config.set", {"key": "k", "value": [2]})
    log.run("config.set", {"key": "k2", "value": 0})
    log.run("config.delete", {"key": "k"})

    for name, old in maps.items():
        assert old == frozen[name], f"{name} was mutated in place"
        assert getattr(s, name) is not old, f"{name} was not replaced"
    assert record == frozen_record
    assert s.workers["w1"]["priority"] == 1 and record["priority"] == 50


def _script() -> list[dict[str, Any]]:
    cmds = [
        make("worker.add", {"worker": {"id": "w1", "url": URL, "labels": {"a": "b"}}}, by="t"),
        make("worker.add", {"worker": {"id": "w2", "url": "http://10.0.0.2:1"}}, by="t"),
        make("worker.add", {"worker": {"id": "w3", "url": URL}}, by="t"),  # conflict
        make("worker.update", {"id": "w1", "changes": {"cost": 3.0}}, by="t"),
        make("worker.set_status", {"id": "w2", "status": "ready", "model_id": "m"}, by="t"),
        make("worker.remove", {"id": "w1"}, by="t"),
        make("policy.set", {"model": "*", "policy": "random"}, by="t"),
        make("config.set", {"key": "a", "value": {"x": 1}}, by="t"),
        make("config.set", {"key": "a", "value": 2, "expected_version": 1}, by="t"),  # mismatch
        make("config.delete", {"key": "zzz"}, by="t"),  # not found
    ]
    cmds.append(cmds[3])  # a retry
    cmds.append({"op": "bogus"})  # malformed
    return cmds


def test_same_commands_give_equal_states() -> None:
    cmds = _script()
    a, b = ControlState(), ControlState()
    outcomes_a = [a.apply(c, i) for i, c in enumerate(cmds, start=1)]
    outcomes_b = [b.apply(copy.deepcopy(c), i) for i, c in enumerate(cmds, start=1)]
    assert outcomes_a == outcomes_b
    assert vars(a) == vars(b)
    assert a.applied_index == len(cmds)
    assert set(a.workers) == {"w2"} and a.workers["w2"]["model_id"] == "m"


def test_populated_state_pickles() -> None:
    script = _script()
    s = ControlState()
    for i, c in enumerate(script, start=1):
        s.apply(c, i)
    assert s.workers and s.policies and s.config and s.requests
    restored = pickle.loads(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(restored) is ControlState
    assert vars(restored) == vars(s)
    # Dedup survives the round trip: a retried command gets its first answer.
    before = snapshot(restored)
    assert restored.apply(script[3], 99) == s.requests[script[3]["rid"]]["outcome"]
    assert snapshot(restored) == before


def test_handler_table_covers_exactly_all_ops() -> None:
    assert set(state._HANDLERS) == set(ALL_OPS)
    assert len(ALL_OPS) == len(set(ALL_OPS))
    assert all(callable(h) for h in state._HANDLERS.values())
