"""Components a `POST /wasm` on this node is taking in: stored in the blob store, not yet
named by a committed record. Removing unused blobs (a refused registration, a deleted
module) keeps these, so two registrations of the same bytes never delete each other's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class Taking:
    """One request's holds: `taking(digest)` holds a digest until `release()` (or the end
    of `Holds.taking_in`)."""

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts
        self._mine: list[str] = []

    def __call__(self, digest: str) -> None:
        self._counts[digest] += 1
        self._mine.append(digest)

    def release(self) -> list[str]:
        """Let go of every digest held; the ones this request held."""
        mine, self._mine = self._mine, []
        for digest in mine:
            self._counts[digest] -= 1
            if self._counts[digest] <= 0:
                del self._counts[digest]
        return mine


class Holds:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    @contextmanager
    def taking_in(self) -> Iterator[Taking]:
        taking = Taking(self._counts)
        try:
            yield taking
        finally:
            taking.release()

    def held(self) -> set[str]:
        return set(self._counts)
