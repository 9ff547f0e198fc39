"""A node of several processes counts its rate limits in its data-plane processes: its
control process reads their counters and shows the node's.

Each data-plane process serves its own counters to its node's processes on
`process-pN.sock` (`GET /limits`, node/plane/siblings.py). The control process reads
every one once a second (and afresh for `/ha/rate-limit/stats`), each within
GATHER_SECS, and adds them up: the `rate_limits` of its `/ha/local` (which its peers
read) and its `/ha/rate-limit/stats` are the node's, counted as a node of one process
counts them. A process that did not answer the last reading (stopped, being
restarted) is named under `missing_processes`, and its counts are left out of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from node.plane.siblings import LIMITS, SocketClients
from node.service import Periodic

GATHER_SECS: Final = 1.0  # each process's answer
EVERY_SECS: Final = 1.0  # between two readings (peers read /ha/local as often)

Stats = dict[str, Any]  # RateLimiter.stats()


class ProcessLimits:
    """The control process's reading of its data-plane processes' counters (`sockets`:
    each one's by name); `own` is its own RateLimiter.stats(): the rules, the backend
    and the node's share of each rule."""

    def __init__(
        self, sockets: Mapping[str, Path], clients: SocketClients, own: Callable[[], Stats]
    ) -> None:
        self.sockets = dict(sockets)
        self.clients = clients
        self.own = own
        self.last: dict[str, Stats | None] = dict.fromkeys(self.sockets)  # None: no answer
        self._reading = Periodic("process-limits", self.gather, EVERY_SECS, immediately=True)

    def start(self) -> None:
        self._reading.start()

    async def stop(self) -> None:
        await self._reading.stop()

    async def gather(self) -> None:
        """Read every data-plane process's counters (each within GATHER_SECS)."""
        read = await asyncio.gather(
            *(self.clients.get(path, LIMITS, GATHER_SECS) for path in self.sockets.values())
        )
        self.last = {name: _rate_stats(body) for name, body in zip(self.sockets, read, strict=True)}

    def rate_stats(self) -> Stats:
        """The node's rate-limit stats, as of the last reading."""
        return node_rate_stats(self.own(), self.last)


def node_rate_stats(own: Stats, by_process: Mapping[str, Stats | None]) -> Stats:
    """`own` (the control process's stats) with each process's admitted and rejected
    counts added to every scope `own` has, each process's under `by_process`."""
    scopes = {scope: {**counts, "by_process": {}} for scope, counts in own["scopes"].items()}
    for process, stats in by_process.items():
        for scope, counts in (stats or {}).get("scopes", {}).items():
            total = scopes.get(scope)
            if total is None or not isinstance(counts, dict):
                continue  # a rule this process has, and the control process no longer
            mine = {field: _count(counts.get(field)) for field in ("admitted", "rejected")}
            total["admitted"] += mine["admitted"]
            total["rejected"] += mine["rejected"]
            total["by_process"][process] = mine
    return {
        **own,
        "scopes": scopes,
        "processes": sorted(p for p, stats in by_process.items() if stats is not None),
        "missing_processes": sorted(p for p, stats in by_process.items() if stats is None),
    }


def _rate_stats(body: bytes | None) -> Stats | None:
    try:
        stats = orjson.loads(body)["rate_limits"] if body is not None else None
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    return stats if isinstance(stats, dict) else None


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0
