"""Ways to cut a text into stream chunks, for checking that streaming equals whole."""

from __future__ import annotations

import random


def chunkings(text: str, seed: int) -> list[list[str]]:
    """One character at a time, then five seeded random cuttings."""
    rng = random.Random(seed)
    out = [list(text)]
    for _ in range(5):
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 6))))
        out.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    return out
