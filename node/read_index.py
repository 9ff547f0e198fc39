"""Make this node current before it answers from its replica (Raft's ReadIndex).

A node applies a write some time after the leader committed it, so a client
that wrote through node A and then reads or validates through node B may find
B behind. `ReadIndex.current()` closes that gap before a handler decides from
the state (a 404 "Model not found", a 409, a `?consistent=true` read):
- on a leader that holds its lease (`MeshRaft.leader_read_index`), it waits
  until the leader has applied its own commit index: no message is sent;
- anywhere else it commits a `read.barrier` through the log and waits for it to
  be applied here: whatever was committed before the barrier was proposed is
  then applied too. One Raft round trip; the barrier changes nothing.

Concurrent callers share barriers: a caller joins the next barrier to be
proposed, never one already on its way (it may have been committed before the
caller's write was), so each caller still sees everything committed before it
arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from mesh import commands
from mesh.raft import NOT_COMMITTED, CommitError, MeshRaft
from node.applied_wait import AppliedWaiter
from node.errors import ApiError

RETRY_AFTER: Final = {"Retry-After": "1"}


class ReadIndex:
    """Brings this node's replica up to what the mesh has committed."""

    def __init__(self, raft: MeshRaft, waiter: AppliedWaiter, wait_secs: float, actor: str) -> None:
        self._raft = raft
        self._waiter = waiter
        self._wait_secs = wait_secs
        self._actor = actor
        self._sent: asyncio.Future[None] | None = None  # the barrier on its way
        self._next: asyncio.Future[None] | None = None  # the one proposed after it

    async def current(self) -> None:
        """Return once this node has applied everything committed before the call;
        ApiError 503 (with Retry-After) when that cannot be confirmed in time."""
        target = self._raft.leader_read_index()
        if target is not None:
            # Uncapped: this runs behind the route's guard, for the leader's own commit index.
            if not await self._waiter.wait(target, self._wait_secs, capped=False):
                raise ApiError(
                    503,
                    f"this node is the leader but has not applied its commit index {target} "
                    f"within {self._wait_secs:g} s; retry shortly",
                    code="NOT_CURRENT",
                    headers=RETRY_AFTER,
                )
            return
        await asyncio.shield(self._join())

    def _join(self) -> asyncio.Future[None]:
        """The barrier to wait for: the next one to be proposed, or a new one at once."""
        if self._sent is None:
            self._sent = asyncio.ensure_future(self._propose(None))
            return self._sent
        if self._next is None:
            self._next = asyncio.ensure_future(self._propose(self._sent))
        return self._next

    async def _propose(self, previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):  # its own callers have its answer
                await previous
            self._sent, self._next = self._next, None  # on its way: nobody joins it now
        try:
            await self._barrier()
        finally:
            if self._sent is asyncio.current_task():
                self._sent = None

    async def _barrier(self) -> None:
        command = commands.make("read.barrier", {}, by=self._actor)
        try:
            if self._raft.status().cut_off:  # fail now, not after the wait
                raise CommitError("no_quorum", "no majority of voters is reachable")
            await self._raft.submit(command, timeout=self._wait_secs)
        except CommitError as exc:
            raise ApiError(
                503,
                f"this node could not confirm that its state is current ({exc.reason}: {exc}), "
                "so it neither answered nor changed anything; the mesh may have no leader or "
                "quorum right now; retry shortly",
                code="NOT_CURRENT",
                headers={"Retry-After": str(max(1, round(exc.retry_after)))},
                extra={"outcome": NOT_COMMITTED},  # the request's own write was never sent
            ) from None
