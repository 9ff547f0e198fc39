"""Ways to cut a text into stream chunks, for checking that streaming equals whole."""

from __future__ import annotations

import random

import pytest
from hypothesis import strategies as st

from node.parsers.textbuf import TextBuffer


def chunkings(text: str, seed: int) -> list[list[str]]:
    """One character at a time, then five seeded random cuttings."""
    rng = random.Random(seed)
    out = [list(text)]
    for _ in range(5):
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 6))))
        out.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    return out


def texts_made_of(pieces: list[str]) -> st.SearchStrategy[str]:
    """Any text, or text made mostly of `pieces` (a parser's tags and fragments of them)."""
    piece = st.sampled_from(pieces)
    return st.one_of(st.text(), st.lists(st.one_of(piece, st.text(max_size=3))).map("".join))


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Characters read from any stream's TextBuffer from now on, in `[0]`: linear time
    counted rather than timed."""
    read = [0]
    slice_text = TextBuffer.slice

    def counted(self: TextBuffer, start: int, end: int | None = None) -> str:
        got = slice_text(self, start, end)
        read[0] += len(got)
        return got

    monkeypatch.setattr(TextBuffer, "slice", counted)
    return read
