"""Wait, bounded, until this node has applied the log up to an index.

The applied stream (mesh/events.py) wakes the waiters on each applied command,
so a wait costs nothing while nothing is applied. No-op entries (one per new
leader) move the applied position without a command, so a waiter also looks
again every `RECHECK_SECS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from mesh.events import Applied, AppliedStream

RECHECK_SECS: Final = 0.05

Indexes = Callable[[], tuple[int, int]]  # (commit index, applied index): MeshRaft.indexes


class AppliedWaiter:
    """Waits for this node's applied index to reach a target."""

    def __init__(self, indexes: Indexes, stream: AppliedStream) -> None:
        self._indexes = indexes
        self._changed = asyncio.Event()
        stream.subscribe(self._on_applied)

    def applied(self) -> int:
        return self._indexes()[1]

    async def wait(self, index: int, timeout: float) -> bool:
        """True once the applied index is at least `index`; False if `timeout` ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed  # taken before the check: no apply slips in between
            if self.applied() >= index:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), min(left, RECHECK_SECS))
            except TimeoutError:
                pass

    def _on_applied(self, _: Applied) -> None:
        # A new event per change: every waiter of the old one wakes, none misses one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
