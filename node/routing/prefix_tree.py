"""The approximate prefix tree behind `cache_aware`: which workers saw which prompt prefixes.

Prompts are cut into fixed-size chunks of `chunk_chars` characters and stored
in a trie whose edges are whole chunks (dict lookups on short strings), so a
2,000-character prompt costs ~60 dict steps instead of 2,000. Matching is
therefore at chunk granularity, which is precise enough to predict prefix
cache hits on a worker.

Each node records the workers that were sent a prompt passing through it, with
the tick of that request. A worker present at a node is present at all of its
ancestors, which keeps `forget()` and eviction local.

Memory is bounded by `max_size`, the total characters held by the tree (each
node holds its chunk once, however many workers share it). An insert that
pushes the total over the bound evicts least-recently-used leaves right away,
so the bound always holds. Leaves sit in a heap with lazy deletion (an entry
whose node was touched, grew children or was removed since is skipped), so an
eviction costs O(log n) per leaf rather than a scan of the tree; the heap is
rebuilt from the tree only when stale entries outnumber the nodes.
"""

from __future__ import annotations

import heapq


class Node:
    """One chunk of prompt text, the workers that saw it, and when it was last used."""

    __slots__ = ("children", "key", "last", "parent", "workers")

    def __init__(self, key: str, parent: Node | None) -> None:
        self.key = key
        self.parent = parent
        self.children: dict[str, Node] | None = None
        self.workers: dict[str, int] = {}
        self.last = 0


class PrefixTree:
    """A chunked trie of prompt prefixes with per-worker footprints and LRU eviction."""

    __slots__ = (
        "_footprint",
        "_leaves",
        "_seq",
        "chunk_chars",
        "max_size",
        "node_count",
        "root",
        "total_chars",
    )

    def __init__(self, chunk_chars: int, max_size: int) -> None:
        self.chunk_chars = chunk_chars
        self.max_size = max_size
        self.root = Node("", None)
        self.total_chars = 0
        self.node_count = 0
        self._footprint: dict[str, int] = {}
        # Heap of (last use, sequence number, node); entries may be stale (see `_pop_lru_leaf`).
        self._leaves: list[tuple[int, int, Node]] = []
        self._seq = 0

    def split(self, text: str) -> list[str]:
        size = self.chunk_chars
        return [text[i : i + size] for i in range(0, len(text), size)]

    def walk(self, chunks: list[str]) -> list[Node]:
        """The existing nodes along `chunks`, from the root's child down as far as they go."""
        path: list[Node] = []
        node = self.root
        for chunk in chunks:
            children = node.children
            if children is None:
                break
            child = children.get(chunk)
            if child is None:
                break
            path.append(child)
            node = child
        return path

    def footprint(self, worker_id: str) -> int:
        """Characters of stored prefixes attributed to `worker_id`."""
        return self._footprint.get(worker_id, 0)

    def insert(self, chunks: list[str], path: list[Node], worker_id: str, tick: int) -> None:
        """Record that `worker_id` was sent `chunks`; `path` is `walk(chunks)`, not yet changed.

        `tick` must grow with every call: it orders nodes for eviction.
        """
        added = 0
        for node in path:
            if worker_id not in node.workers:
                added += len(node.key)
            node.workers[worker_id] = tick
            node.last = tick
        node = path[-1] if path else self.root
        grown = 0
        for chunk in chunks[len(path) :]:
            child = Node(chunk, node)
            child.workers[worker_id] = tick
            child.last = tick
            if node.children is None:
                node.children = {chunk: child}
            else:
                node.children[chunk] = child
            grown += len(chunk)
            self.node_count += 1
            node = child
        if added or grown:
            self._footprint[worker_id] = self._footprint.get(worker_id, 0) + added + grown
        if node.children is None and node is not self.root:
            self._push_leaf(node)
        if grown:
            self.total_chars += grown
            if self.total_chars > self.max_size:
                self.evict(self.max_size)

    def evict(self, target: int) -> None:
        """Remove least-recently-used leaves until at most `target` characters remain."""
        footprint = self._footprint
        leaves = self._leaves
        leaf = None
        while self.total_chars > target:
            if leaf is None:
                leaf = self._pop_lru_leaf()
                if leaf is None:
                    break
            parent = leaf.parent
            assert parent is not None and parent.children is not None
            del parent.children[leaf.key]
            leaf.parent = None
            self.node_count -= 1
            size = len(leaf.key)
            self.total_chars -= size
            for wid in leaf.workers:
                left = footprint[wid] - size
                if left:
                    footprint[wid] = left
                else:
                    del footprint[wid]
            leaf = None
            if not parent.children:
                parent.children = None
                if parent is not self.root:
                    # Usually the parent is now the oldest leaf: take it without a heap round trip.
                    if not leaves or parent.last <= leaves[0][0]:
                        leaf = parent
                    else:
                        self._push_leaf(parent)
        if leaf is not None:
            self._push_leaf(leaf)

    def forget(self, worker_id: str) -> None:
        """Remove the worker everywhere, and the nodes no other worker holds."""
        if self._footprint.pop(worker_id, None) is None:
            return
        stack = [self.root]
        while stack:
            node = stack.pop()
            children = node.children
            if not children:
                continue
            for key, child in list(children.items()):
                if worker_id not in child.workers:
                    continue  # nor in its subtree
                del child.workers[worker_id]
                if child.workers:
                    stack.append(child)
                else:
                    del children[key]
                    self._detach(child)
            if not children:
                node.children = None
                if node is not self.root:
                    self._push_leaf(node)

    def _detach(self, top: Node) -> None:
        """Account for removing the subtree under `top` (already unlinked from its parent)."""
        stack = [top]
        while stack:
            node = stack.pop()
            node.parent = None
            self.total_chars -= len(node.key)
            self.node_count -= 1
            if node.children:
                stack.extend(node.children.values())

    def _push_leaf(self, node: Node) -> None:
        if len(self._leaves) > 2 * self.node_count + 64:
            self._rebuild_heap()
        self._seq += 1
        heapq.heappush(self._leaves, (node.last, self._seq, node))

    def _pop_lru_leaf(self) -> Node | None:
        """The least recently used live leaf, skipping entries that no longer describe one."""
        leaves = self._leaves
        while leaves:
            last, _, node = heapq.heappop(leaves)
            if node.parent is not None and node.children is None and node.last == last:
                return node
        return None

    def _rebuild_heap(self) -> None:
        entries: list[tuple[int, int, Node]] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children.values())
            elif node is not self.root:
                self._seq += 1
                entries.append((node.last, self._seq, node))
        heapq.heapify(entries)
        self._leaves = entries
