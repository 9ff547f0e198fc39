"""Rings (ring.py's JSON) merged and read out as chart columns.

The answer for one node is one column per measure over the window's buckets, oldest
first, as charts (uPlot) take them:
    {"at": [t0, t0 + 10, ...],                       bucket starts, unix seconds
     "total": {"requests": [...], "requests_per_s": [...], "errors": [...],
               "errors_per_s": [...], "rejected": [...], "rejected_per_s": [...],
               "latency_p50_ms": [...], "latency_p99_ms": [...],
               "ttft_p50_ms": [...], "ttft_p99_ms": [...]},
     "models": {"<model>": {the same columns}, ...}}
A bucket with no request has counts 0 and percentiles null. The current bucket's rates
are over the seconds it has run so far (at least 1), not the whole 10.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

from node.digits import ascii_int
from node.traffic.ring import BUCKET_SECS, MAX_MODELS, OTHER, Cell, bin_ms

Buckets = dict[int, dict[str, Cell]]
COUNTS: Final = ("requests", "errors", "rejected")
QUANTILES: Final = (("p50", 0.5), ("p99", 0.99))


class BadRing(ValueError):
    """A process's or peer's ring that is not ring.py's JSON."""


def _cell(data: Mapping[str, Any]) -> Cell:
    try:
        return Cell(
            int(data["requests"]),
            int(data["errors"]),
            int(data["rejected"]),
            Counter({int(k): int(v) for k, v in data["latency"].items()}),
            Counter({int(k): int(v) for k, v in data["ttft"].items()}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRing(f"not a traffic cell: {exc}") from None


def _add(into: Cell, cell: Cell) -> None:
    into.requests += cell.requests
    into.errors += cell.errors
    into.rejected += cell.rejected
    into.latency.update(cell.latency)
    into.ttft.update(cell.ttft)


def merge(raws: Iterable[Mapping[str, Any]]) -> Buckets:
    """Several rings (a node's processes) as one: their cells added up."""
    merged: Buckets = {}
    for raw in raws:
        buckets = raw.get("buckets") if isinstance(raw, Mapping) else None
        if not isinstance(buckets, Mapping):
            raise BadRing("no buckets")
        for start, cells in buckets.items():
            at = ascii_int(str(start))
            if not isinstance(cells, Mapping) or at is None:
                raise BadRing("a bucket is not a start time and an object")
            into = merged.setdefault(at, {})
            for model, data in cells.items():
                _add(into.setdefault(str(model), Cell()), _cell(data))
    return merged


def _quantile(histogram: Counter[int], q: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(bin_ms(index), 3)
    return None  # not reached: seen ends at total


def _columns(cells: list[Cell | None], spans: list[float]) -> dict[str, list[Any]]:
    empty = Cell()
    rows = [cell or empty for cell in cells]
    columns: dict[str, list[Any]] = {}
    for name in COUNTS:
        counts = [getattr(row, name) for row in rows]
        columns[name] = counts
        columns[f"{name}_per_s"] = [round(n / s, 3) for n, s in zip(counts, spans, strict=True)]
    for measure in ("latency", "ttft"):
        for label, q in QUANTILES:
            columns[f"{measure}_{label}_ms"] = [_quantile(getattr(r, measure), q) for r in rows]
    return columns


def _kept_models(buckets: Buckets) -> set[str]:
    """The MAX_MODELS busiest models of the window (the rest show as OTHER)."""
    busy: Counter[str] = Counter()
    for cells in buckets.values():
        for model, cell in cells.items():
            if model != OTHER:
                busy[model] += cell.requests
    return {model for model, _ in busy.most_common(MAX_MODELS)}


def series(buckets: Buckets, minutes: int, now: float) -> dict[str, Any]:
    """The window of `minutes` up to `now` as columns (see the module's docstring)."""
    current = int(now // BUCKET_SECS) * BUCKET_SECS
    starts = [current - i * BUCKET_SECS for i in reversed(range(minutes * 60 // BUCKET_SECS))]
    spans = [float(BUCKET_SECS)] * (len(starts) - 1) + [min(BUCKET_SECS, max(1.0, now - current))]
    window = {start: buckets.get(start, {}) for start in starts}
    kept = _kept_models(window)
    totals: list[Cell | None] = []
    by_model: dict[str, list[Cell | None]] = {}
    for i, cells in enumerate(window.values()):
        total = Cell()
        for model, cell in cells.items():
            _add(total, cell)
            name = model if model in kept else OTHER
            column = by_model.setdefault(name, [None] * len(starts))
            slot = column[i] = column[i] or Cell()
            _add(slot, cell)
        totals.append(total)
    return {
        "at": starts,
        "total": _columns(totals, spans),
        "models": {model: _columns(cells, spans) for model, cells in sorted(by_model.items())},
    }
