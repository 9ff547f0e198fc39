"""Uniform random choice: stateless spread, useful when nodes must not synchronise.

Named `random_policy` so it does not shadow the standard library's `random`.
A seed may be given so tests (and reproductions) see a fixed sequence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts


class RandomPolicy:
    """Pick any candidate with equal probability."""

    __slots__ = ("_rng",)

    name = "random"
    needs_prompt = False

    def __init__(self, *, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        return self._rng.randrange(len(candidates))

    def forget(self, worker_id: str) -> None:
        """Nothing is remembered per worker."""
