"""How much of a buffer's tail might be the start of a marker, and so must wait."""

from __future__ import annotations

from collections.abc import Iterable


def partial_suffix_len(text: str, markers: Iterable[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a marker.

    A chunk ending in `</thi` cannot be emitted yet: the next chunk may finish the tag."""
    best = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), best, -1):
            if marker.startswith(text[-size:]):
                best = size
                break
    return best
