"""The restricted unpickler (`mesh/unpickler.py`) and its installation into pysyncobj.

Everything pysyncobj and meshgate put in a pickle must round-trip (pickled
the way pysyncobj pickles: protocol 2); every other global is refused, and a
refusal is never retried with an unrestricted unpickler.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pysyncobj.journal
import pysyncobj.pickle
import pytest
from pysyncobj.journal import createJournal
from pysyncobj.node import TCPNode

from mesh import commands, raft, unpickler
from mesh.state import ControlState

ADDRESS = "10.0.0.1:4321"


def entry(funcid: int, *args: Any) -> bytes:
    """A REGULAR log entry as pysyncobj's @replicated writes it (type byte + pickle)."""
    return b"\x00" + pickle.dumps((funcid, args), 2)


def roundtrip(obj: Any) -> Any:
    return unpickler.loads(pickle.dumps(obj, 2))


class Evil:
    def __init__(self, fn: Any, *args: Any) -> None:
        self.call = (fn, args)

    def __reduce__(self) -> tuple[Any, ...]:
        return self.call


def a_state() -> ControlState:
    """A state with something in most collections, built through `apply`."""
    state = ControlState()
    made = [
        commands.make("config.set", {"key": "k", "value": {"a": [1, 2.5, None, True]}}, by="t"),
        commands.make("tenant.create", {"name": "acme"}, by="t"),
        commands.make("ratelimit.set", {"scope": "*", "requests_per_second": 5, "burst": 9}, by=""),
        commands.make(
            "member.upsert",
            {"member": {"name": "n1", "raft_address": ADDRESS, "http_url": "x", "boot_id": "b"}},
            by="t",
        ),
    ]
    for index, command in enumerate(made, start=2):
        assert state.apply(command, index)["ok"], command
    return state


def test_every_message_pysyncobj_sends_round_trips() -> None:
    key = os.urandom(32)
    messages = [
        key,  # the key exchange
        (key, os.urandom(32)),
        (key, ADDRESS),
        (key, "readonly"),
        ["status"],
        ["add", ADDRESS],
        {"type": "request_vote", "term": 3, "last_log_index": 10, "last_log_term": 2},
        {"type": "response_vote", "term": 3},
        {
            "type": "append_entries",
            "term": 3,
            "commit_index": 9,
            "entries": [(entry(0, {"op": "config.set"}), 10, 3), (b"\x01", 11, 3)],
            "prevLogIdx": 9,
            "prevLogTerm": 2,
        },
        {"type": "append_entries", "transmission": "start", "data": b"\x80" * 100, "term": 3},
        {"type": "append_entries", "term": 3, "commit_index": 9, "serialized": (b"", True, False)},
        {"type": "next_node_idx", "next_node_idx": 11, "reset": False, "success": True},
        {"type": "apply_command", "command": entry(0, {"op": "x"}), "request_id": 7},
        {"type": "apply_command_response", "request_id": 7, "log_idx": 12, "log_term": 3},
        {"type": "timeout_now", "term": 3},
    ]
    for message in messages:
        assert roundtrip(message) == message


def test_log_entries_membership_and_snapshot_parts_round_trip() -> None:
    command = commands.make("config.set", {"key": "k", "value": 1.5}, by="n1/admin")
    assert roundtrip((0, (command,))) == (0, (command,))
    membership = ["add", ADDRESS, TCPNode(ADDRESS)]
    back = roundtrip(membership)
    assert back == membership and isinstance(back[2], TCPNode) and back[2].port == 4321
    state = a_state()
    restored = roundtrip(state)
    assert isinstance(restored, ControlState) and restored.__dict__ == state.__dict__
    # the full dump: (data, last entry, entry before it, cluster); a read-only node has None
    dump = (
        [{"_SyncObj__enabledCodeVersion": 0}, {"state": state}],
        (b"\x00x", 5, 2),
        (b"\x01", 4, 2),
        {TCPNode(ADDRESS), TCPNode("10.0.0.2:4321"), None},
    )
    assert roundtrip(dump)[3] == dump[3]
    assert roundtrip(frozenset({1, 2})) == frozenset({1, 2}) and roundtrip(b"") == b""


def test_the_journal_meta_written_by_pysyncobj_round_trips(tmp_path: Path) -> None:
    journal = createJournal(str(tmp_path / "raft.journal"))
    journal.setRaftCommitIndex(12)
    journal.setCurrentTerm(4, ADDRESS)
    journal._destroy()
    meta = unpickler.loads((tmp_path / "raft.journal.meta").read_bytes())
    assert meta == {"raftCommitIndex": 12, "currentTerm": 4, "votedForNodeId": ADDRESS}


@pytest.mark.parametrize(
    "payload",
    [
        Evil(os.system, "touch /tmp/meshgate-should-never-exist"),
        Evil(eval, "1+1"),
        Evil(getattr, 1, "real"),
        Evil(subprocess.Popen, ["true"]),
        Evil(bytes, 10**12),  # bytes(n) would allocate n bytes
        Evil(bytearray, 10),
        Evil(__import__, "os"),
    ],
    ids=["os.system", "eval", "getattr", "Popen", "bytes(n)", "bytearray", "__import__"],
)
def test_anything_else_is_refused(payload: Evil) -> None:
    data = pickle.dumps(payload, 2)
    with pytest.raises(pickle.UnpicklingError, match=r"refused|allowed"):
        unpickler.loads(data)
    with pytest.raises(pickle.UnpicklingError):
        unpickler.loads(pickle.dumps({"nested": [payload]}, 4))  # any protocol


def test_codecs_encode_is_latin1_only() -> None:
    import _codecs

    with pytest.raises(pickle.UnpicklingError, match="latin-1"):
        unpickler.loads(pickle.dumps(Evil(_codecs.encode, "x" * 10, "zlib"), 2))
    assert unpickler.loads(pickle.dumps(b"\x00\xffbytes", 2)) == b"\x00\xffbytes"


def test_pysyncobj_unpickles_only_through_ours_and_never_falls_back() -> None:
    raft._restrict_unpickling()
    raft._restrict_unpickling()  # idempotent
    assert pysyncobj.pickle.loads is unpickler.loads
    assert pysyncobj.pickle.load is unpickler.load
    assert pysyncobj.journal.loads is unpickler.loads
    for name, module in sys.modules.items():
        if name.startswith("pysyncobj"):
            for attribute in ("loads", "load"):
                assert getattr(module, attribute, None) not in raft._PYSYNCOBJ_UNPICKLERS
    evil = pickle.dumps(Evil(os.system, "true"), 2)
    with pytest.raises(pickle.UnpicklingError):
        pysyncobj.pickle.loads(evil)  # pysyncobj's own loads retried with pickle._loads
    assert pysyncobj.pickle.loads(pickle.dumps(["add", ADDRESS], 2)) == ["add", ADDRESS]
