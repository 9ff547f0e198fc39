"""Round robin: the simplest fair spread, and the baseline other policies fall back to.

Each policy instance keeps its own counter; the candidate list may grow or
shrink between calls, so the counter is reduced modulo the current length.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts


class RoundRobinPolicy:
    """Rotate through the candidates in order."""

    __slots__ = ("_turn",)

    name = "round_robin"
    needs_prompt = False

    def __init__(self) -> None:
        self._turn = 0

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        index = self._turn % len(candidates)
        self._turn = index + 1
        return index

    def forget(self, worker_id: str) -> None:
        """Nothing is remembered per worker."""
