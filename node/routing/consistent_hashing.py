"""Consistent hashing on the request's routing key: session affinity that survives churn.

Requests carrying the same `routing_key` (session id, `x-routing-key`, or the
body's `user`) land on the same worker while the pool is unchanged, and when a
worker leaves only its own keys move. Requests without a key are spread round
robin, since there is nothing to be sticky about.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts
from node.routing.hash_ring import RingCache


class ConsistentHashingPolicy:
    """Hash ring with virtual nodes over candidate ids, keyed by `facts.routing_key`."""

    __slots__ = ("_rings", "_turn")

    name = "consistent_hashing"
    needs_prompt = False  # keyed by the routing key, never by the prompt

    def __init__(self, *, virtual_nodes: int = 160) -> None:
        self._rings = RingCache(virtual_nodes)
        self._turn = 0

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        key = facts.routing_key
        if not key:
            index = self._turn % len(candidates)
            self._turn = index + 1
            return index
        if len(candidates) == 1:
            return 0
        return self._rings.index_for(candidates, key)

    def forget(self, worker_id: str) -> None:
        self._rings.forget(worker_id)
