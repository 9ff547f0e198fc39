"""The leader's clock on each command it takes into its log (issue 8, fault 1).

A command a proposer gave up on must not land late. The proposer stamps an expiry;
the leader stamps its own clock ("lt") as it takes the command into its log, through
`StampingQueue`, the queue pysyncobj's Raft thread takes commands from;
`ControlState.apply` refuses a command whose stamp is past its expiry.
docs/consistency.md has the argument.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pysyncobj.pickle
from pysyncobj.syncobj import _COMMAND_TYPE

from mesh import unpickler

_REGULAR_KIND = bytes([_COMMAND_TYPE.REGULAR])


def stamp_entry(entry: bytes, now: float) -> bytes:
    """A REGULAR log entry with `now` written into its command as the leader stamp "lt".

    The entry is pysyncobj's pickled call of `_Replica.apply`: (method id, (command,)).
    Anything else (no-ops, membership changes, a pickle our unpickler refuses, a call
    that is not one command) is returned unchanged: the apply step decides about it
    as before. A stamp the entry already carries is overwritten: only the leader's
    own clock, read as it takes the entry into its log, counts."""
    if not isinstance(entry, bytes) or entry[:1] != _REGULAR_KIND:
        return entry
    try:
        call = unpickler.loads(entry[1:])
    except Exception:
        return entry
    if not (isinstance(call, tuple) and len(call) == 2 and isinstance(call[1], tuple)):
        return entry
    method, args = call
    if len(args) != 1 or not isinstance(args[0], dict):
        return entry
    stamped: bytes = pysyncobj.pickle.dumps((method, ({**args[0], "lt": now},)))
    return _REGULAR_KIND + stamped


class StampingQueue:
    """pysyncobj's command queue, handing the leader its commands stamped with its clock.

    `SyncObj._checkCommandsToApply` (the Raft thread) takes each queued command with
    `get_nowait()` and, in the same step, adds it to the log when this node leads, or
    forwards it to the leader (which queues it in turn) otherwise. So a command taken
    while this node leads is one that enters this leader's log now: that is the moment
    to stamp, the narrowest hook pysyncobj offers short of copying that method. A
    command forwarded from a follower is stamped by the leader it reaches, when it
    reaches the leader's log, however late TCP delivers it."""

    def __init__(self, queue: Any, leading: Callable[[], bool]) -> None:
        self._queue = queue
        self._leading = leading

    def put_nowait(self, value: Any) -> None:
        self._queue.put_nowait(value)

    def get_nowait(self) -> Any:
        command, callback = self._queue.get_nowait()
        if self._leading():
            command = stamp_entry(command, time.time())
        return command, callback
