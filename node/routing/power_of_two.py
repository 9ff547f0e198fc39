"""Power of two choices: near least-load balance at the cost of two random probes.

Sampling two distinct candidates and keeping the less loaded one avoids the
herding that a strict least-load policy shows when many nodes act on the same
stale picture, while still steering away from busy workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts


class PowerOfTwoPolicy:
    """Pick the lower-load of two distinct random candidates."""

    __slots__ = ("_rng",)

    name = "power_of_two"
    needs_prompt = False

    def __init__(self, *, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        count = len(candidates)
        if count == 1:
            return 0
        rng = self._rng
        first = rng.randrange(count)
        second = rng.randrange(count - 1)
        if second >= first:
            second += 1
        a = candidates[first]
        b = candidates[second]
        # Lower load, then lower cost, then higher priority; a full tie keeps the first draw.
        if (b.load, b.cost, -b.priority) < (a.load, a.cost, -a.priority):
            return second
        return first

    def forget(self, worker_id: str) -> None:
        """Nothing is remembered per worker."""
