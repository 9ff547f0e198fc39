"""raft_bench.py's watcher: every change of Raft term, role and leader, as the nodes report it.

Phases 3 and 4 poll each running node's `/ha/local` and keep each change with its
time, so that a stall in the writes can be told apart: an election, a slow exit,
or a node that took long to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from raft_cluster import Api, Supervisor


@dataclass(frozen=True)
class Change:
    at: float  # perf_counter when seen
    node: str
    term: int | None
    role: str | None
    leader: str | None
    restarted: bool

    def text(self) -> str:
        return (
            f"{self.node} sees term {self.term}, is {self.role}, leader {self.leader or 'none'}"
            + (" (new boot)" if self.restarted else "")
        )


class Watcher:
    """Polls every running node's `/ha/local` and records each change of term, role or leader.

    A node refreshes that view on its Raft thread every 0.1 s, so changes are seen up to
    ~0.1 s + one poll interval late: enough to tell an election from a slow exit."""

    def __init__(self, api: Api, sup: Supervisor, interval: float) -> None:
        self.api = api
        self.sup = sup
        self.interval = interval
        self.changes: list[Change] = []
        self.first_terms: list[int] = []  # each node's term at the first look
        self._last: dict[str, tuple[Any, ...]] = {}
        self._names = {node.raft_address: node.name for node in sup.mesh.nodes}

    async def run(self, stop: asyncio.Event) -> None:
        if self.interval <= 0:
            return
        while not stop.is_set():
            await asyncio.gather(*(self._poll(n) for n in self.sup.up()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def _poll(self, name: str) -> None:
        try:
            code, body = await self.api.get(name, "/ha/local", timeout=0.5)
        except (aiohttp.ClientError, TimeoutError):
            return
        if code != 200 or not isinstance(body, dict):
            return
        raw_leader = body.get("leader")
        leader = self._names.get(raw_leader, raw_leader) if raw_leader else None
        state = (body.get("boot_id"), body.get("term"), body.get("role"), leader)
        previous = self._last.get(name)
        if state == previous:
            return
        self._last[name] = state
        if previous is None and isinstance(state[1], int):
            self.first_terms.append(state[1])
        if previous is not None:  # the first look at a node is no change
            self.changes.append(
                Change(
                    time.perf_counter(),
                    name,
                    state[1],
                    state[2],
                    leader,
                    restarted=previous[0] != state[0],
                )
            )


@contextlib.asynccontextmanager
async def watching(watcher: Watcher) -> AsyncIterator[Watcher]:
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        yield watcher
    finally:
        stop.set()
        await task


def elections(watcher: Watcher) -> list[dict[str, Any]]:
    """Each term newer than the watcher's first look that got a leader, when first seen."""
    baseline = max(watcher.first_terms, default=0)
    seen: dict[int, Change] = {}
    for c in watcher.changes:
        if c.term is not None and c.term > baseline and c.leader and c.term not in seen:
            seen[c.term] = c
    return [
        {"term": term, "leader": c.leader, "at": c.at, "seen_by": c.node}
        for term, c in sorted(seen.items())
    ]
