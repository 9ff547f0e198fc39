"""Cache-aware routing (after SGLang's router): reuse workers' prefix caches, within balance.

A prefix tree remembers which workers were recently sent which prompt
prefixes. A request whose prompt largely matches what some worker has seen
goes to that worker, whose KV cache likely still holds the prefix; a prompt
nobody has seen goes to the worker with the smallest footprint in the tree, so
distinct prefixes spread out. When loads are badly imbalanced, balance wins
over cache affinity and the least-loaded worker is chosen. Every choice is then
recorded in the tree.

One instance serves one model (the gateway creates one per model), so the tree
is not keyed by model.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.routing.base import Candidate, RequestFacts
from node.routing.least_load import least_load_index
from node.routing.prefix_tree import Node, PrefixTree


class CacheAwarePolicy:
    """Longest cached prefix when balanced and the match is good, otherwise spread."""

    __slots__ = (
        "_abs",
        "_max_prompt",
        "_rel",
        "_threshold",
        "_tick",
        "_turn",
        "tree",
    )

    name = "cache_aware"
    needs_prompt = True

    def __init__(
        self,
        *,
        cache_threshold: float = 0.3,
        balance_abs_threshold: int = 64,
        balance_rel_threshold: float = 1.5,
        max_tree_size: int = 2**19,
        chunk_chars: int = 32,
        max_prompt_chars: int = 16384,
    ) -> None:
        self._threshold = cache_threshold
        self._abs = balance_abs_threshold
        self._rel = balance_rel_threshold
        self._max_prompt = max_prompt_chars
        self.tree = PrefixTree(chunk_chars, max_tree_size)
        self._tick = 0
        self._turn = 0

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        prompt = facts.prompt_key(self._max_prompt)
        if not prompt:
            turn = self._turn
            self._turn = turn + 1
            return least_load_index(candidates, turn)
        self._tick += 1
        tree = self.tree
        chunks = tree.split(prompt)
        path = tree.walk(chunks)
        index = 0 if len(candidates) == 1 else self._choose(candidates, prompt, path)
        tree.insert(chunks, path, candidates[index].id, self._tick)
        return index

    def forget(self, worker_id: str) -> None:
        self.tree.forget(worker_id)

    def _choose(self, candidates: Sequence[Candidate], prompt: str, path: list[Node]) -> int:
        min_load = max_load = candidates[0].load
        for cand in candidates:
            load = cand.load
            if load < min_load:
                min_load = load
            elif load > max_load:
                max_load = load
        if max_load - min_load > self._abs and max_load > min_load * self._rel:
            turn = self._turn
            self._turn = turn + 1
            return least_load_index(candidates, turn)

        if path:
            matched, holder = self._deepest_holder(candidates, path)
            if holder >= 0 and matched / len(prompt) > self._threshold:
                return holder

        # Nobody holds enough of this prompt: the emptiest tree (then the lowest load) takes it.
        footprint = self.tree.footprint
        best = 0
        best_key = (footprint(candidates[0].id), candidates[0].load)
        for index in range(1, len(candidates)):
            cand = candidates[index]
            key = (footprint(cand.id), cand.load)
            if key < best_key:
                best, best_key = index, key
        return best

    def _deepest_holder(self, candidates: Sequence[Candidate], path: list[Node]) -> tuple[int, int]:
        """(matched chars, candidate index) for the deepest path node a candidate holds.

        Among candidates at that node the lowest load wins, then the most recent use.
        Returns (0, -1) when no candidate appears on the path.
        """
        position = {cand.id: index for index, cand in enumerate(candidates)}
        for depth in range(len(path) - 1, -1, -1):
            best = -1
            best_load = best_tick = 0
            for wid, tick in path[depth].workers.items():
                index = position.get(wid)
                if index is None:
                    continue
                load = candidates[index].load
                if best < 0 or load < best_load or (load == best_load and tick > best_tick):
                    best, best_load, best_tick = index, load, tick
            if best >= 0:
                matched = depth * self.tree.chunk_chars + len(path[depth].key)
                return matched, best
        return 0, -1
