"""Counts of what the Raft port refused, logged as a summary instead of one line per refusal.

A flood of junk at the Raft port is thousands of refused connections a
second; logging each would turn the attack into a disk-filling one and cost
the Raft thread more than the refusal itself. So refusals are counted by
kind, the counts are exposed (`RaftStatus.refused_connections`, /metrics),
and a summary is logged at most every `every` seconds. (An authenticated
link that fails is rare and worth a line of its own: mesh/connection.py logs
it at once.)
"""

from __future__ import annotations

import collections
import logging
import time

log = logging.getLogger("mesh.transport")


class Refusals:
    """Raft-thread-only counters of refused frames and connections, by kind."""

    def __init__(self, every: float = 10.0) -> None:
        self.total: collections.Counter[str] = collections.Counter()
        self._every = every
        self._pending: collections.Counter[str] = collections.Counter()
        self._peers: set[str] = set()
        self._why = ""  # the reason given with the last refusal that had one
        self._logged_at = 0.0

    def note(self, kind: str, peer: str, why: str = "") -> None:
        """Count one refusal; log a summary if the last one is old enough."""
        self.total[kind] += 1
        self._pending[kind] += 1
        self._peers.add(peer)
        self._why = why or self._why
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Log what was refused since the last summary (at most every `every` seconds)."""
        now = time.monotonic()
        if not self._pending or (not force and now - self._logged_at < self._every):
            return
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self._pending.items()))
        peers = ", ".join(sorted(self._peers)[:5]) + (" ..." if len(self._peers) > 5 else "")
        why = f"; last reason: {self._why}" if self._why else ""
        log.warning("Raft port refused: %s (from %s%s)", counts, peers, why)
        self._pending.clear()
        self._peers.clear()
        self._why = ""
        self._logged_at = now

    def count(self) -> int:
        return sum(self.total.values())
