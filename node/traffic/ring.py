"""Per model, in 10 s buckets over the last 30 minutes: requests, 5xx errors, the node's own
4xx refusals, and latency and time-to-first-token histograms.

Fed once per inference request by the request metrics (node/metrics.py). Memory stays
bounded whatever the traffic: at most KEEP_BUCKETS buckets, MAX_MODELS models in each (the
rest fold into OTHER), and a histogram of at most a few hundred log-spaced bins per cell.

A histogram bin is `ceil(log2(ms) * BINS_PER_DOUBLING)`, so a percentile read back is the
upper bound of its bin: never low, and at most 2^(1/16) - 1 (4.4%) high. Bins add, so the
rings of a node's processes, and of the nodes of a mesh, merge exactly (summary.py).

Recording runs on every inference request, so it allocates nothing once a bucket and its
model's cell exist: the current bucket is kept at hand until the clock leaves it, and a
bin is one bisect of the bins' precomputed bounds.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

BUCKET_SECS: Final = 10
MAX_MINUTES: Final = 30
KEEP_BUCKETS: Final = MAX_MINUTES * 60 // BUCKET_SECS + 1  # the window and the current one
MAX_MODELS: Final = 16  # per bucket; more fold into OTHER
OTHER: Final = "other"
BINS_PER_DOUBLING: Final = 16
LOWEST_MS: Final = 0.001  # anything faster counts in this bin


def bin_of(seconds: float) -> int:
    return math.ceil(math.log2(max(seconds * 1000.0, LOWEST_MS)) * BINS_PER_DOUBLING)


def bin_ms(index: int) -> float:
    """The upper bound (ms) of bin `index`."""
    return float(2.0 ** (index / BINS_PER_DOUBLING))


_FIRST_BIN: Final = bin_of(0.0)  # LOWEST_MS's
_LAST_BIN: Final = bin_of(24 * 3600.0)  # a day; anything slower takes the logarithm
_BOUNDS: Final = [bin_ms(i) / 1000.0 for i in range(_FIRST_BIN, _LAST_BIN + 1)]  # seconds


def bin_index(seconds: float) -> int:
    """`bin_of(seconds)` by one bisect: the first bin whose upper bound is not below it."""
    at = bisect_left(_BOUNDS, seconds)
    return _FIRST_BIN + at if at < len(_BOUNDS) else bin_of(seconds)


@dataclass(slots=True)
class Cell:
    """One model's traffic in one bucket."""

    requests: int = 0
    errors: int = 0  # answered 5xx
    rejected: int = 0  # the node's own 4xx (bad input, auth, limits); not 499
    latency: Counter[int] = field(default_factory=Counter)
    ttft: Counter[int] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rejected": self.rejected,
            "latency": {str(k): v for k, v in self.latency.items()},
            "ttft": {str(k): v for k, v in self.ttft.items()},
        }


class TrafficRing:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._buckets: dict[int, dict[str, Cell]] = {}
        # The bucket now being filled, and the clock's span it covers.
        self._cells: dict[str, Cell] = {}
        self._start = self._end = 0.0

    def record(
        self, model: str, status: int, seconds: float, ttft: float | None, own: bool
    ) -> None:
        """One answered request (`own`: the node answered it, not a worker)."""
        now = self._clock()
        if not self._start <= now < self._end:
            self._turn(now)
        cell = self._cells.get(model)
        if cell is None:
            cell = self._cell(model)
        cell.requests += 1
        if status >= 400:
            cell.errors += status >= 500
            cell.rejected += own and status < 499
        cell.latency[bin_index(seconds)] += 1
        if ttft is not None:
            cell.ttft[bin_index(ttft)] += 1

    def _turn(self, now: float) -> None:
        """Make the bucket holding `now` the current one (a new one drops the aged)."""
        start = int(now // BUCKET_SECS) * BUCKET_SECS
        cells = self._buckets.get(start)
        if cells is None:
            cells = self._buckets[start] = {}
            self._prune(start)
        self._cells, self._start, self._end = cells, start, start + BUCKET_SECS

    def _cell(self, model: str) -> Cell:
        """The current bucket's new cell for `model` (OTHER past MAX_MODELS)."""
        cells = self._cells
        if len(cells) >= MAX_MODELS:
            model = OTHER
        return cells.setdefault(model, Cell())

    def _prune(self, newest: int) -> None:
        oldest = newest - (KEEP_BUCKETS - 1) * BUCKET_SECS
        for start in [s for s in self._buckets if not oldest <= s <= newest]:
            del self._buckets[start]  # aged out, or ahead of a clock that stepped back

    def raw(self, minutes: int) -> dict[str, Any]:
        """The last `minutes` as JSON (the form processes and peers exchange)."""
        since = (int(self._clock() // BUCKET_SECS) - minutes * 60 // BUCKET_SECS) * BUCKET_SECS
        return {
            "bucket_secs": BUCKET_SECS,
            "buckets": {
                str(start): {model: cell.to_json() for model, cell in cells.items()}
                for start, cells in self._buckets.items()
                if start > since
            },
        }
