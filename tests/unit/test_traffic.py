"""The traffic ring and its summary: counts and percentiles right, memory bounded whatever
the models and the time, and a node's processes' rings merged over their sibling sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mesh.events import AppliedStream
from node.applied_wait import AppliedWaiter
from node.metrics import Metrics
from node.plane.siblings import process_socket, serve_siblings
from node.traffic.gather import node_summary
from node.traffic.ring import (
    KEEP_BUCKETS,
    LOWEST_MS,
    MAX_MODELS,
    OTHER,
    TrafficRing,
    bin_index,
    bin_ms,
    bin_of,
)
from node.traffic.summary import BadRing, merge, series

T0 = 1_800_000_000.0  # a bucket start


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_counts_rates_and_percentiles_of_one_bucket() -> None:
    clock = Clock()
    ring = TrafficRing(clock)
    for ms in range(1, 101):  # 1..100 ms: p50 50 ms, p99 99 ms
        ring.record("m", 200, ms / 1000, ttft=ms / 2000, own=False)
    ring.record("x", 502, 0.2, None, own=False)
    ring.record("x", 404, 0.001, None, own=True)  # the node refused it
    ring.record("x", 404, 0.001, None, own=False)  # the worker's answer, relayed
    ring.record("x", 499, 0.001, None, own=True)  # the client hung up: not a refusal
    clock.now = T0 + 4.0
    columns = series(merge([ring.raw(1)]), 1, clock.now)
    assert columns["at"] == [T0 - 50 + 10 * i for i in range(6)]
    m, x = columns["models"]["m"], columns["models"]["x"]
    assert x["requests"][-1] == 4 and x["errors"][-1] == 1 and x["rejected"][-1] == 1
    assert m["requests"][-1] == 100 and m["errors"][-1] == m["rejected"][-1] == 0
    assert m["requests_per_s"][-1] == 25.0  # over the 4 s the bucket has run
    assert m["requests"][:-1] == [0] * 5 and m["latency_p50_ms"][:-1] == [None] * 5
    for key, exact in (("latency_p50_ms", 50), ("latency_p99_ms", 99), ("ttft_p50_ms", 25)):
        assert exact <= m[key][-1] <= exact * 1.045, key  # a bin's upper bound: 4.4% at most
    total = columns["total"]
    assert total["requests"][-1] == 104 and total["latency_p99_ms"][-1] >= 99


@pytest.mark.parametrize("seconds", [0.0, 1e-7, 0.000999, 0.0123, 0.05, 1.0, 7.5, 3600.0, 9e5])
def test_a_bin_is_the_first_whose_bound_is_not_below_the_time(seconds: float) -> None:
    index = bin_index(seconds)  # one bisect, up to a day; the logarithm past it
    assert abs(index - bin_of(seconds)) <= 1  # they differ only on a bound itself
    assert max(seconds * 1000, LOWEST_MS) <= bin_ms(index) * (1 + 1e-12)  # never low
    assert bin_ms(index - 1) < max(seconds * 1000, LOWEST_MS)  # the first such bin
    if seconds <= 24 * 3600:  # a time on a bound counts in that bound's bin
        assert bin_index(bin_ms(index) / 1000) == index


def test_models_past_the_cap_fold_into_other_and_old_buckets_go() -> None:
    clock = Clock()
    ring = TrafficRing(clock)
    for i in range(MAX_MODELS + 5):
        ring.record(f"model-{i}", 200, 0.01, None, own=False)
    raw = ring.raw(30)
    (cells,) = raw["buckets"].values()
    assert len(cells) == MAX_MODELS + 1 and cells[OTHER]["requests"] == 5
    for _ in range(KEEP_BUCKETS + 50):  # an hour of buckets
        clock.now += 10
        ring.record("m", 200, 0.01, None, own=False)
    assert len(ring._buckets) == KEEP_BUCKETS
    assert len(ring.raw(30)["buckets"]) == KEEP_BUCKETS - 1  # 30 minutes: 180 buckets
    clock.now = T0  # the clock stepped back: what lies ahead of it is dropped
    ring.record("m", 200, 0.01, None, own=False)
    assert len(ring._buckets) == 1


def test_merged_rings_add_up_and_the_busiest_models_are_kept() -> None:
    clock = Clock()
    one, two = TrafficRing(clock), TrafficRing(clock)
    for i in range(MAX_MODELS + 2):
        one.record(f"model-{i}", 200, 0.01, None, own=False)
    for _ in range(3):
        two.record("model-0", 500, 0.01, None, own=False)
    columns = series(merge([one.raw(1), two.raw(1)]), 1, clock.now + 1)
    assert columns["models"]["model-0"]["requests"][-1] == 4
    assert columns["models"]["model-0"]["errors"][-1] == 3
    assert len(columns["models"]) == MAX_MODELS + 1 and columns["models"][OTHER]["requests"][-1]
    assert columns["total"]["requests"][-1] == MAX_MODELS + 5


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"buckets": []},
        {"buckets": {"x": {}}},
        {"buckets": {"\u00b2": {}}},  # str.isdigit() but not int(): BadRing, not ValueError
        {"buckets": {"10": {"m": {"requests": 1}}}},
        {
            "buckets": {
                "10": {"m": {"requests": 1, "errors": 0, "rejected": 0, "latency": [], "ttft": {}}}
            }
        },
    ],
)
def test_a_bad_ring_is_refused(raw: object) -> None:
    with pytest.raises(BadRing):
        merge([raw])  # type: ignore[list-item]


def test_a_node_adds_its_processes_rings_and_names_the_silent_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        waiter = AppliedWaiter(lambda: (1, 1), stream)
        metrics = Metrics("n1")
        for _ in range(3):
            metrics.request("/v1/chat/completions", "m", 200, 0.02, 0.01, own=False)
        path = process_socket(tmp_path, "p1")
        site = await serve_siblings(metrics, waiter, 0.3, path, dict, lambda at, part: {})
        silent = process_socket(tmp_path, "p2")
        silent.touch()  # being restarted: no answer
        own = TrafficRing()
        own.record("m", 503, 0.001, None, own=True)
        try:
            summary = await node_summary(own, {"p1": path, "p2": silent}, 2, own._clock())
        finally:
            await site.cleanup()
        assert summary["processes"] == 1 and summary["missing_processes"] == ["p2"]
        assert sum(summary["models"]["m"]["requests"]) == 4
        assert sum(summary["models"]["m"]["errors"]) == 1
        assert len(summary["at"]) == 12

    asyncio.run(scenario())
