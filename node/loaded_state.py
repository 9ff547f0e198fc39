"""Has this node a control state it may serve the data plane from (static stability)?

Yes once Raft has caught up with a leader during this run, or once it has replayed
the journal of an earlier run that had caught up: the node then serves from its
last applied state, with or without a leader. An earlier run leaves a marker file
in the data directory the first time it catches up; "replayed" means applied up to
the commit index the journal recorded, which a follower without a leader keeps.
A restarted node that hears from a leader within `stale_after` of its start waits
to catch up with it instead (a rolling restart then moves on only once the node
holds the mesh's state); one that hears from none serves from its journal.

The one exception: a node that never caught up (a brand-new one, an emptied data
directory, or one whose first catch-up never finished) holds an empty or partial
replica, which cannot tell "no worker, key or rule exists" from "not received yet",
so it stays unloaded until it catches up with a leader.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mesh.raft import RaftStatus
from node.service import DONE

MARKER: Final = "caught-up-once"


class LoadedState:
    """The rule above, read from Raft's status and the marker; `record` writes the marker."""

    def __init__(
        self,
        data_path: Path,
        status: Callable[[], RaftStatus],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._marker = data_path / MARKER
        self.caught_up_before = self._marker.exists()  # read once: about earlier runs
        self._status = status
        self._clock = clock
        self._started = clock()
        self._recorded = self.caught_up_before

    def problem(self) -> str | None:
        """Why there is no state to serve from yet, in words for an operator; None if there is."""
        status = self._status()
        if status.ready:
            return None
        if not self.caught_up_before:
            return "control state has not caught up with the mesh yet"
        if status.role == "starting" or status.applied_index < status.commit_index:
            return (
                f"replaying the journal ({status.applied_index} of "
                f"{status.commit_index} entries applied)"
            )
        if not status.stale:
            return "catching up with the leader"  # reachable: serve its state, not the journal's
        waited = self._clock() - self._started
        if waited < status.stale_after:
            left = status.stale_after - waited
            return f"waiting {left:.1f} s for a leader before serving from the journal"
        return None

    def loaded(self) -> bool:
        return self.problem() is None

    def worth_waiting(self) -> bool:
        """A starting node loads its state soon: requests wait for it (node/load_gate.py)."""
        return True

    async def record(self) -> object:
        """A periodic step: once caught up in this run, leave the marker for later runs."""
        if not self._status().ready:
            return None
        if not self._recorded:
            partial = self._marker.with_suffix(".tmp")
            partial.write_text("this data directory's state was caught up with a leader\n")
            os.replace(partial, self._marker)  # whole or absent, even after a crash
            self._recorded = True
        return DONE
