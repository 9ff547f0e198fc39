"""Prefix hashing: send prompts that start alike to the same worker, for its prefix cache.

The key is the first `prefix_chars` characters of the prompt, so requests that
share a system prompt or a conversation's opening reuse the worker that already
holds those KV-cache blocks. It is stateless apart from the cached ring, and
every mesh node makes the same choice. Without a prompt it falls back to the
routing key, and without either to round robin.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts
from node.routing.hash_ring import RingCache


class PrefixHashPolicy:
    """Hash ring keyed by the prompt's first `prefix_chars` characters."""

    __slots__ = ("_prefix_chars", "_rings", "_turn")

    name = "prefix_hash"
    needs_prompt = True

    def __init__(self, *, virtual_nodes: int = 160, prefix_chars: int = 256) -> None:
        self._rings = RingCache(virtual_nodes)
        self._prefix_chars = prefix_chars
        self._turn = 0

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        prompt = facts.prompt_key(self._prefix_chars)
        key = prompt if prompt else facts.routing_key
        if not key:
            index = self._turn % len(candidates)
            self._turn = index + 1
            return index
        if len(candidates) == 1:
            return 0
        return self._rings.index_for(candidates, key)

    def forget(self, worker_id: str) -> None:
        self._rings.forget(worker_id)
