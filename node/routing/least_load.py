"""Least load: send each request to the worker with the fewest in-flight requests.

Ties matter: when the pool is idle every worker has load 0, and a plain
`min()` would send all traffic to the first one. Ties are broken by higher
priority, then lower cost, then by rotating among the workers still tied.
The selection helper is shared with `cache_aware`, which falls back to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts


def least_load_index(candidates: Sequence[Candidate], turn: int) -> int:
    """Index of the best (load, -priority, cost) candidate; `turn` rotates exact ties.

    Two passes over the candidates and no allocation: the first finds the best
    key and how many candidates share it, the second returns the
    `turn % ties`-th of them.
    """
    best_load = best_priority = 0
    best_cost = 0.0
    ties = 0
    first = -1
    for index, cand in enumerate(candidates):
        load = cand.load
        if first >= 0:
            if load > best_load:
                continue
            if load == best_load:
                priority = cand.priority
                if priority < best_priority:
                    continue
                if priority == best_priority:
                    cost = cand.cost
                    if cost > best_cost:
                        continue
                    if cost == best_cost:
                        ties += 1
                        continue
        best_load, best_priority, best_cost = load, cand.priority, cand.cost
        ties = 1
        first = index
    if ties == 1:
        return first
    wanted = turn % ties
    for index in range(first, len(candidates)):
        cand = candidates[index]
        if cand.load == best_load and cand.priority == best_priority and cand.cost == best_cost:
            if wanted == 0:
                return index
            wanted -= 1
    return first  # unreachable unless a candidate's fields changed under us


class LeastLoadPolicy:
    """Minimum load; ties → higher priority → lower cost → round robin."""

    __slots__ = ("_turn",)

    name = "least_load"
    needs_prompt = False

    def __init__(self) -> None:
        self._turn = 0

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        turn = self._turn
        self._turn = turn + 1
        return least_load_index(candidates, turn)

    def forget(self, worker_id: str) -> None:
        """Nothing is remembered per worker."""
