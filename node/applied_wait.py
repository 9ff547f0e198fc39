"""Wait, bounded, until this node has applied the log up to an index.

Waiters sit in a heap keyed by the index they wait for; each is a plain future
with one deadline. The applied stream (mesh/events.py) calls `_on_applied`,
which looks at the heap's top only: an apply that reaches no waiter costs O(1)
however many wait, and one that does wakes exactly those it reached, lowest
index first. No-op entries (one per new leader) move the applied position
without a command, so while anyone waits ONE shared timer looks again every
`RECHECK_SECS`; no waiter polls.

A waiter that times out or is cancelled (its client went away: the node serves
with `handler_cancellation`) leaves at once from the count, and from the heap
lazily (dropped when it reaches the top, or when the heap is rebuilt once dead
entries outnumber live ones), so nothing leaks. At most `MAX_WAITERS` capped
waits (the unauthenticated `X-Meshgate-Min-Index` ones) are held at a time;
beyond that `wait` raises `TooManyWaiters` at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mesh.events import Applied, AppliedStream

RECHECK_SECS: Final = 0.05
MAX_WAITERS: Final = 1000  # capped waits held at once on a node (X-Meshgate-Min-Index)

Indexes = Callable[[], tuple[int, int]]  # (commit index, applied index): MeshRaft.indexes


class TooManyWaiters(Exception):
    """`limit` capped waits (`MAX_WAITERS`) are already held: refused without waiting."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} waits are already held")
        self.limit = limit


@dataclass(order=True)
class _Waiter:
    index: int
    seq: int  # arrival order among equal indexes; futures are never compared
    future: asyncio.Future[None] = field(compare=False)
    capped: bool = field(compare=False)


class AppliedWaiter:
    """Waits for this node's applied index to reach a target."""

    def __init__(self, indexes: Indexes, stream: AppliedStream, limit: int = MAX_WAITERS) -> None:
        self._indexes = indexes
        self._limit = limit
        self._heap: list[_Waiter] = []
        self._live = 0  # waits held: registered, not yet left (woken, timed out, cancelled)
        self._capped = 0  # of those, the capped ones (counted against the limit)
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        stream.subscribe(self._on_applied)

    def applied(self) -> int:
        return self._indexes()[1]

    @property
    def limit(self) -> int:
        """How many capped waits may be held at once."""
        return self._limit

    @property
    def waiting(self) -> int:
        """How many waits are held now."""
        return self._live

    async def wait(self, index: int, timeout: float, *, capped: bool = True) -> bool:
        """True once the applied index is at least `index`; False if `timeout` ran out.

        A capped wait (the default) raises TooManyWaiters when `MAX_WAITERS` capped
        waits are already held; `capped=False` is for callers behind a route's guard."""
        if self.applied() >= index:
            return True
        if timeout <= 0:
            return False
        if capped and self._capped >= self._limit:
            raise TooManyWaiters(self._limit)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(index, next(self._seq), loop.create_future(), capped)
        heapq.heappush(self._heap, waiter)
        self._live += 1
        self._capped += capped
        if self._timer is None:
            self._timer = loop.call_later(RECHECK_SECS, self._recheck)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
            return True
        except TimeoutError:
            return self.applied() >= index
        finally:
            self._leave(waiter)

    def _leave(self, waiter: _Waiter) -> None:
        """Count a finished wait out; rebuild the heap once dead entries outnumber live ones."""
        if not waiter.future.done():
            waiter.future.cancel()  # the deadline passed: the heap entry is dead from now on
        self._live -= 1
        self._capped -= waiter.capped
        if len(self._heap) > 2 * self._live:
            self._heap = [w for w in self._heap if not w.future.done()]
            heapq.heapify(self._heap)
        if not self._heap and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        """Resolve every waiter the applied index has reached; drop dead ones at the top."""
        heap = self._heap
        if not heap:
            return
        applied = self.applied()
        while heap and (heap[0].index <= applied or heap[0].future.done()):
            waiter = heapq.heappop(heap)
            if not waiter.future.done():
                waiter.future.set_result(None)

    def _on_applied(self, _: Applied) -> None:
        self._wake()

    def _recheck(self) -> None:
        """The one shared timer: sees applies that came without a published command."""
        self._wake()
        if self._heap:
            self._timer = asyncio.get_running_loop().call_later(RECHECK_SECS, self._recheck)
        else:
            self._timer = None
