"""Static stability: when a node has a state to serve the data plane from.

Caught up in this run, or a journal replayed from a run that had caught up (its
marker in the data directory); never a node that never caught up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from mesh.raft import RaftStatus
from node.loaded_state import MARKER, LoadedState
from node.service import DONE

BASE = RaftStatus(None, "follower", None, 3, 40, 40, None, False, 40, False)


class Status:
    """Raft's status as the test sets it."""

    def __init__(self, **changes: object) -> None:
        self.now = replace(BASE, **changes)  # type: ignore[arg-type]

    def __call__(self) -> RaftStatus:
        return self.now


def test_a_node_that_caught_up_in_this_run_is_loaded(tmp_path: Path) -> None:
    loaded = LoadedState(tmp_path, Status(ready=True))
    assert loaded.problem() is None and loaded.loaded()


def test_a_node_that_never_caught_up_is_not_loaded_even_without_a_leader(
    tmp_path: Path,
) -> None:
    """The exception: an empty (or partial) replica cannot tell "none" from "not yet"."""
    loaded = LoadedState(tmp_path, Status(applied_index=1, commit_index=1))
    assert loaded.problem() == "control state has not caught up with the mesh yet"


def test_a_restart_without_a_leader_serves_once_the_journal_is_replayed(tmp_path: Path) -> None:
    status = Status(ready=True)
    first = LoadedState(tmp_path, status)
    assert asyncio.run(first.record()) is DONE
    assert (tmp_path / MARKER).exists()

    clock = Clock()
    status.now = replace(BASE, role="starting", applied_index=0, commit_index=0)
    again = LoadedState(tmp_path, status, clock)  # the next run, no leader anywhere
    assert again.problem() is not None  # Raft has not read its journal yet
    status.now = replace(BASE, applied_index=12, commit_index=40)
    assert again.problem() == "replaying the journal (12 of 40 entries applied)"
    status.now = replace(BASE, applied_index=40, commit_index=40)
    assert again.problem() == "waiting 2.0 s for a leader before serving from the journal"
    clock.now += BASE.stale_after
    assert again.loaded()


def test_a_restart_that_reaches_a_leader_waits_to_catch_up(tmp_path: Path) -> None:
    """Only a node that hears from no leader serves its journal: a rolling restart must
    not move on while the restarted node still serves an older state."""
    (tmp_path / MARKER).write_text("")
    clock = Clock()
    status = Status(leader="n1", last_leader_contact=time.monotonic())  # heard just now
    loaded = LoadedState(tmp_path, status, clock)
    clock.now += 60  # long past the wait for a leader: it has one
    assert loaded.problem() == "catching up with the leader"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_marker_is_written_only_once_caught_up(tmp_path: Path) -> None:
    status = Status()
    loaded = LoadedState(tmp_path, status)
    assert asyncio.run(loaded.record()) is None  # keep polling
    assert not (tmp_path / MARKER).exists()
    status.now = replace(BASE, ready=True)
    assert asyncio.run(loaded.record()) is DONE
    assert (tmp_path / MARKER).exists() and not (tmp_path / f"{MARKER}.tmp").exists()
