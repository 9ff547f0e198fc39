"""`ControlState.to_snapshot` / `from_snapshot`: the whole state as plain data, through JSON.

A data-plane process loads the control process's state this way (node/plane/), then
applies the same log; a field left out would differ between the two replicas."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mesh.commands import make
from mesh.state import SNAPSHOT_FIELDS, ControlState


def through_json(state: ControlState) -> ControlState:
    return ControlState.from_snapshot(orjson.loads(orjson.dumps(state.to_snapshot())))


def test_the_snapshot_names_every_field_of_the_state() -> None:
    # Fails when a field is added to ControlState.__init__ and not to SNAPSHOT_FIELDS.
    assert set(vars(ControlState())) | {"recent"} == set(SNAPSHOT_FIELDS)


def test_every_field_survives_the_round_trip() -> None:
    state = ControlState()
    for number, name in enumerate(SNAPSHOT_FIELDS, start=1):
        default = getattr(state, name)
        value: Any
        if isinstance(default, bool):
            value = not default
        elif isinstance(default, int | float):
            value = type(default)(number * 7)
        else:  # a dict: a record that no default holds
            value = {f"{name}-key": {"n": number, "list": [1, "two", None], "f": 0.25}}
        setattr(state, name, value)
    copy = through_json(state)
    for name in SNAPSHOT_FIELDS:
        assert getattr(copy, name) == getattr(state, name), name
    assert copy.to_snapshot() == state.to_snapshot()


def test_a_loaded_state_applies_the_next_commands_as_the_original_does() -> None:
    state = ControlState()
    first = [
        make("worker.add", {"worker": {"id": "w1", "url": "http://10.0.0.1:8000"}}, by="t"),
        make("policy.set", {"model": "m", "policy": "round_robin"}, by="t"),
        make("config.set", {"key": "k", "value": {"a": [1, 2]}}, by="t"),
        make("tenant.create", {"name": "t1"}, by="t"),
        make("breaker.reset", {}, by="t"),
    ]
    for index, command in enumerate(first, start=1):
        state.apply({**command, "lt": 1000.0 + index}, index * 2)  # gaps: Raft's no-ops
    copy = through_json(state)
    assert copy.to_snapshot() == state.to_snapshot()
    repeat = {**first[2], "lt": 2000.0}  # a retried request id answers as the first time
    later = make("worker.update", {"id": "w1", "changes": {"priority": 7}}, by="t")
    for index, command in ((20, repeat), (21, later)):
        assert copy.apply(command, index) == state.apply(command, index)
    assert copy.to_snapshot() == state.to_snapshot()


def test_a_state_from_before_request_records_keeps_its_request_memory() -> None:
    state = ControlState()
    del state.requests  # as unpickled from a snapshot written before `requests`
    state.recent = {"rid-1": {"ok": True, "value": None}}
    copy = through_json(state)
    assert "requests" not in copy.__dict__
    assert copy.apply(make("read.barrier", {}, by="t", rid="rid-1"), 1) == {
        "ok": True,
        "value": None,
    }


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown control state fields"):
        ControlState.from_snapshot({"applied_index": 1, "surprise": {}})
