"""Consistent-hash ring shared by the `consistent_hashing` and `prefix_hash` policies.

Every node of the mesh must map a key to the same worker, so hashing uses
BLAKE2b (stable across processes) rather than Python's salted `hash()`. Each
worker owns `virtual_nodes` points on a 64-bit ring; a key goes to the owner of
the first point at or after its hash. A worker's points depend only on its id,
so when one worker leaves, only the keys it owned move.

Building a ring costs `virtual_nodes * workers` hashes plus a sort, so rings
are cached per candidate-id tuple (a few of them, so a flapping worker does
not force a rebuild on every request), and each worker's points are cached.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from hashlib import blake2b

from node.routing.base import Candidate

# Bound on remembered per-worker point lists when `forget()` is never called.
_MAX_POINT_LISTS = 4096


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is identical in every process and on every host."""
    data = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    """An immutable ring over one ordered tuple of worker ids."""

    __slots__ = ("_owners", "_points")

    def __init__(self, ids: Sequence[str], points: Sequence[Sequence[int]]) -> None:
        # Sort by (point, id) so equal points (vanishingly rare) still order the same everywhere.
        ring = sorted(
            (point, wid, index)
            for index, (wid, pts) in enumerate(zip(ids, points, strict=True))
            for point in pts
        )
        self._points = [point for point, _, _ in ring]
        self._owners = [index for _, _, index in ring]

    def owner(self, key_hash: int) -> int:
        """Index (into the ids the ring was built from) of the worker owning `key_hash`."""
        pos = bisect_left(self._points, key_hash)
        if pos == len(self._points):
            pos = 0
        return self._owners[pos]


class RingCache:
    """Rings for the most recently seen candidate sets, rebuilt only when the set changes."""

    __slots__ = ("_last_ids", "_last_ring", "_max_rings", "_points", "_rings", "_virtual_nodes")

    def __init__(self, virtual_nodes: int, max_rings: int = 4) -> None:
        self._virtual_nodes = virtual_nodes
        self._max_rings = max_rings
        self._rings: dict[tuple[str, ...], HashRing] = {}
        self._points: dict[str, tuple[int, ...]] = {}
        self._last_ids: tuple[str, ...] = ()
        self._last_ring: HashRing | None = None

    def index_for(self, candidates: Sequence[Candidate], key: str) -> int:
        """Index into `candidates` of the worker that owns `key`."""
        ids = tuple([cand.id for cand in candidates])
        ring = self._last_ring
        if ring is None or ids != self._last_ids:
            ring = self._rings.pop(ids, None)
            if ring is None:
                ring = HashRing(ids, [self._points_of(wid) for wid in ids])
                if len(self._rings) >= self._max_rings:
                    del self._rings[next(iter(self._rings))]
            self._rings[ids] = ring  # (re)insert as most recent
            self._last_ids = ids
            self._last_ring = ring
        return ring.owner(stable_hash(key))

    def forget(self, worker_id: str) -> None:
        """Drop the worker's points and every cached ring that includes it."""
        self._points.pop(worker_id, None)
        for ids in [ids for ids in self._rings if worker_id in ids]:
            del self._rings[ids]
        if worker_id in self._last_ids:
            self._last_ids = ()
            self._last_ring = None

    def _points_of(self, worker_id: str) -> tuple[int, ...]:
        points = self._points.get(worker_id)
        if points is None:
            if len(self._points) >= _MAX_POINT_LISTS:
                self._points.clear()
            points = tuple(stable_hash(f"{worker_id}#{v}") for v in range(self._virtual_nodes))
            self._points[worker_id] = points
        return points
