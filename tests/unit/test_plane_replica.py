"""PlaneReplica applies the control process's entries only in step with its own replica."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from mesh.commands import make
from mesh.events import Applied, AppliedStream
from mesh.raft import RaftStatus
from mesh.state import ControlState
from node.plane import codec
from node.plane.data_side import PlaneReplica, _OutOfStep
from node.plane.generated import node_pb2 as pb


def entry(index: int, previous: int, key: str) -> pb.Applied:
    command = make("config.set", {"key": key, "value": index}, by="t")
    return pb.Applied(
        index=index,
        previous_index=previous,
        command_json=codec.dumps(command),
        outcome_json=codec.dumps({"ok": True}),
    )


def test_entries_apply_in_step_and_a_gap_drops_the_stream(tmp_path: Path) -> None:
    async def run() -> list[Applied]:
        published: list[Applied] = []
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        stream.subscribe(published.append)
        replica = PlaneReplica(tmp_path / "plane.sock", stream, process_name="data-1")
        with pytest.raises(_OutOfStep, match="before a snapshot"):
            replica._apply(entry(1, 0, "early"))
        state = ControlState()
        state.apply(make("config.set", {"key": "a", "value": 1}, by="t"), 5)
        replica._load(pb.Snapshot(index=5, state=codec.dumps(state.to_snapshot())))
        assert replica.linked and replica.state.config["a"]["value"] == 1
        replica._apply(entry(7, 5, "b"))  # index 6 was a Raft no-op: a gap, yet in step
        with pytest.raises(_OutOfStep, match="entry 9 follows 8, and this replica is at 7"):
            replica._apply(entry(9, 8, "c"))
        assert "c" not in replica.state.config and replica.state.applied_index == 7
        await asyncio.sleep(0)  # the stream delivers on the next turn of the loop
        return published

    published = asyncio.run(run())
    assert [(item.index, item.op) for item in published] == [(5, "reset"), (7, "config.set")]
    assert published[1].outcome == {"ok": True}  # the control process's outcome, as sent


def test_status_tells_the_replicas_own_applied_index_as_it_moves(tmp_path: Path) -> None:
    async def run() -> None:
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        replica = PlaneReplica(tmp_path / "plane.sock", stream, process_name="data-1")
        state = ControlState()
        state.apply(make("config.set", {"key": "a", "value": 1}, by="t"), 5)
        replica._load(pb.Snapshot(index=5, state=codec.dumps(state.to_snapshot())))
        replica._status = dataclasses.replace(
            RaftStatus.starting(None), applied_index=3, commit_index=3
        )
        first = replica.status()
        assert (first.applied_index, first.commit_index) == (5, 5)
        assert replica.status() is first  # asked by every request: not copied each time
        replica._apply(entry(7, 5, "b"))
        assert (replica.status().applied_index, replica.status().commit_index) == (7, 7)
        replica._status = dataclasses.replace(replica._status, applied_index=9, commit_index=9)
        assert replica.status().applied_index == 9  # a new status from the control process

    asyncio.run(run())
