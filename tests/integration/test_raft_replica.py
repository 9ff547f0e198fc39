"""A one-node Raft group in this process (`mesh/raft.py`): entries that cannot be applied, and
journals and snapshots read back through the restricted unpickler.

The attacks on real node processes are in tests/integration/test_raft_attacks.py
and tests/cluster/test_raft_attacks.py; here the group is driven directly, so
each bad entry's outcome can be read from its own callback.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import pickle
import pickletools
import threading
from pathlib import Path
from typing import Any

import pytest

from mesh import commands, unpickler
from mesh.events import Applied, AppliedStream
from mesh.raft import MeshRaft, RaftSettings
from tests.support import MESH_SECRET, free_port, wait_for

# pysyncobj reads its journal meta with `open(path).read()` and never closes the file.
pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed file.*raft.journal.meta:ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)


class Evil:
    def __init__(self, *call: Any) -> None:
        self.call = call

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.call[0], self.call[1:])


def regular(*payload: Any) -> bytes:
    """A REGULAR entry: type byte 0, then the pickle of (method id, args)."""
    return b"\x00" + pickle.dumps(payload, 2)


class Group:
    """A MeshRaft on a data dir, started and stopped on this (the main) thread."""

    def __init__(self, data_dir: Path, address: str | None = None, **settings: Any) -> None:
        self.settings = RaftSettings(
            data_dir=data_dir,
            self_address=address or f"127.0.0.1:{free_port()}",
            password=MESH_SECRET,
            tick_period=0.005,
            **settings,
        )
        self.stream = AppliedStream()
        self.applied: list[Applied] = []
        self.loop = asyncio.new_event_loop()
        self.stream.bind(self.loop)
        self.stream.subscribe(self.applied.append)
        self.raft = MeshRaft(self.settings, self.stream)
        self.raft.start()
        wait_for(lambda: self.raft.status().ready and self.raft.status().leader, 30, what="ready")

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def drain(self) -> None:
        """Deliver what the Raft thread published to the loop."""
        self.run(asyncio.sleep(0.05))

    def commit_raw(self, entry: bytes | str) -> Any:
        """Put `entry` on the log as pysyncobj would, and return its outcome."""
        done = threading.Event()
        got: list[Any] = []

        def callback(result: Any, error: int) -> None:
            got.append((result, error))
            done.set()

        sync = self.raft._sync
        assert sync is not None
        sync._applyCommand(entry, callback)
        assert done.wait(5), "no callback"
        result, error = got[0]
        assert error == 0, error
        return result

    def stop(self) -> None:
        self.raft.stop()
        self.loop.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_entries_that_cannot_be_applied_are_failed_outcomes_and_the_log_goes_on(
    data_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    poisons = {
        "unknown method id": regular(999, (commands.make("config.set", {"key": "a"}, by="x"),)),
        "refused class": regular(0, (Evil(os.system, f"touch {marker}"),)),
        "wrong arity": regular(0, (1, 2, 3)),
        "not a pickle": b"\x00this is not a pickle",
        "code version": b"\x03" + pickle.dumps(5, 2),
        "unknown entry type": b"\x09whatever",
        "text instead of bytes": "\x00text is stored as UTF-8",
    }
    group = Group(data_dir)
    try:
        for name, entry in poisons.items():
            outcome = group.commit_raw(entry)
            assert outcome["ok"] is False and outcome["error"] == "invalid", name
            assert "cannot be applied" in outcome["message"], (name, outcome)
        # a well-formed envelope around something that is not a command: the state refuses it
        assert group.commit_raw(regular(0, ("not a command",)))["message"] == (
            "command is not a mapping"
        )
        outcome = group.run(group.raft.submit(commands.make("config.set", {"key": "k"}, by="t")))
        assert outcome["ok"] is True
        status = group.raft._read_status(group.raft._sync)
        assert status.unappliable_entries == len(poisons)
        # The index moved on (pysyncobj counts an entry applied once our apply returned,
        # a moment after the submit's answer: polled).
        wait_for(
            lambda: (
                group.raft._read_status(group.raft._sync).applied_index
                == group.raft.state.applied_index
            ),
            what="pysyncobj's applied index at the state's",
        )
        assert group.raft.liveness_problem() is None
        group.drain()
        failed = [a for a in group.applied if a.command == {}]
        assert len(failed) == len(poisons) and all(a.op == "" for a in failed)
        assert all(a.outcome and a.outcome["ok"] is False for a in failed)
        assert sorted(a.index for a in failed) == [a.index for a in failed]
    finally:
        group.stop()
    assert not marker.exists()

    # A restart replays the journal through the same path: it becomes ready, same verdicts.
    again = Group(data_dir, group.settings.self_address)
    try:
        wait_for(
            lambda: again.raft._read_status(again.raft._sync).unappliable_entries == len(poisons)
        )
        assert "k" in again.raft.state.config and again.raft.liveness_problem() is None
    finally:
        again.stop()
    assert not marker.exists()


def test_snapshots_hold_only_allowed_globals_and_restore_through_the_unpickler(
    data_dir: Path,
) -> None:
    group = Group(data_dir, log_compaction_min_entries=3, log_compaction_min_time=1.0)
    dump = data_dir / "raft.dump"

    def snapshot_state() -> Any:
        """The state in the latest snapshot, read with our unpickler (None before the first)."""
        if not dump.exists():
            return None
        data = gzip.decompress(dump.read_bytes())
        return unpickler.loads(data)[0][1]["state"]  # ([syncobj's fields, the replica's], ...)

    try:
        for i in range(10):
            command = commands.make("config.set", {"key": f"k{i}", "value": {"n": i}}, by="t")
            assert group.run(group.raft.submit(command))["ok"]
        # Compaction runs about once a second here; wait for one taken after the last write.
        wait_for(
            lambda: "k9" in getattr(snapshot_state(), "config", {}), 30, what="a full snapshot"
        )
    finally:
        group.stop()
    data = gzip.decompress(dump.read_bytes())
    names = {
        tuple(str(arg).split(" "))
        for op, arg, _ in pickletools.genops(data)
        if op.name in ("GLOBAL", "STACK_GLOBAL")
    }
    assert names  # protocol 2 uses GLOBAL with "module name"
    allowed = unpickler.allowed_names() | {("__builtin__", n) for _, n in unpickler.allowed_names()}
    assert names <= allowed, names - allowed
    assert snapshot_state().config["k9"]["value"] == {"n": 9}

    again = Group(data_dir, group.settings.self_address)  # the snapshot names its members
    try:
        assert again.raft.restores == 1  # the snapshot was loaded, then the journal after it
        assert again.raft.state.config["k9"]["value"] == {"n": 9}
    finally:
        again.stop()


def test_liveness_says_when_the_raft_thread_stalls_or_fails_every_tick(data_dir: Path) -> None:
    group = Group(data_dir, stall_after=0.5)
    raft = group.raft
    sync = raft._sync
    assert sync is not None and raft.liveness_problem() is None
    try:
        release = threading.Event()
        raft._calls.append(lambda: release.wait(10))  # a tick that does not end
        wait_for(lambda: "has not completed a tick" in (raft.liveness_problem() or ""))
        release.set()
        wait_for(lambda: raft.liveness_problem() is None, what="alive again")

        def fail() -> None:
            raise RuntimeError("broken")

        sync.addOnTickCallback(fail)  # every tick raises from now on
        wait_for(lambda: "RuntimeError: broken" in (raft.liveness_problem() or ""))
        assert "ticks in a row" in (raft.liveness_problem() or "")
        sync.removeOnTickCallback(fail)
        wait_for(lambda: raft.liveness_problem() is None, what="alive again")
    finally:
        group.stop()
    assert raft.liveness_problem() == "the Raft thread has stopped"
