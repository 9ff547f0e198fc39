"""Unit tests of quotas in local mode (`node/limits/quotas.py`).

Every test uses a fake clock, so windows only roll when a test says so. `decide`
drives `admit` without an event loop and fails if it ever suspends: local mode
must decide without awaiting any I/O. Releases in local mode do not suspend
either, so `release` drives them the same way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.limits.quotas import (
    CONCURRENCY_RETRY_AFTER,
    Limits,
    QuotaDecision,
    QuotaEngine,
    Subject,
)

HOUR = 3600.0
T0 = 1000 * HOUR  # an hour boundary, hence also a minute and a second boundary


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(nodes: int = 1, clock: FakeClock | None = None) -> tuple[QuotaEngine, FakeClock]:
    clock = clock or FakeClock()
    return QuotaEngine("node-1", None, lambda: nodes, clock=clock), clock


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("suspended: local quota decisions must not await anything")


def decide(engine: QuotaEngine, *subjects: Subject) -> QuotaDecision:
    decision = run_sync(engine.admit(subjects))
    assert decision.allowed == (decision.lease is not None)
    return decision


def release(decision: QuotaDecision, tokens: int = 0) -> None:
    assert decision.lease is not None
    run_sync(decision.lease.release(tokens))


def key(limits: Limits, sid: str = "k1") -> Subject:
    return Subject("key", sid, limits)


def admit_many(engine: QuotaEngine, count: int, *subjects: Subject) -> int:
    return sum(decide(engine, *subjects).allowed for _ in range(count))


def test_no_limits_allows_without_io_and_counts_nothing() -> None:
    engine, _ = make()
    assert engine.backend == "local"
    for subjects in ([], [key(Limits())], [key(Limits()), Subject("tenant", "t", Limits())]):
        d = decide(engine, *subjects)
        assert (d.allowed, d.retry_after, d.refused_by, d.limit, d.remaining) == (
            True,
            0.0,
            None,
            None,
            None,
        )
        release(d, 100)  # a no-op lease, safe to release
    assert engine.usage("key", "k1") == dict.fromkeys(
        ("requests_second", "requests_minute", "requests_hour", "tokens_hour", "in_flight"), 0
    )


def test_per_minute_refuses_until_the_requests_slide_out() -> None:
    """A minute slides in 1 s slots: a request counts for 60 to 61 s, never less."""
    engine, clock = make()
    k = key(Limits(requests_per_minute=5))
    clock.advance(10)
    assert admit_many(engine, 5, k) == 5
    refused = decide(engine, k)
    assert not refused.allowed
    assert refused.refused_by == "key:k1 requests_per_minute"
    assert refused.retry_after == pytest.approx(61)
    clock.advance(50)  # a fixed window would have reset at the minute boundary
    assert not decide(engine, k).allowed
    clock.advance(10.9)
    assert not decide(engine, k).allowed
    clock.advance(0.1)
    assert admit_many(engine, 6, k) == 5  # the first five have left the window
    assert engine.usage("key", "k1")["requests_minute"] == 5
    assert engine.usage("key", "k1")["requests_hour"] == 10


def test_per_hour() -> None:
    engine, clock = make()
    k = key(Limits(requests_per_hour=3))
    assert admit_many(engine, 3, k) == 3
    clock.advance(59 * 60)
    refused = decide(engine, k)
    assert refused.refused_by == "key:k1 requests_per_hour"
    assert refused.retry_after == pytest.approx(120)  # an hour in 1-minute slots: 60 to 61 min
    clock.advance(119)
    assert not decide(engine, k).allowed
    clock.advance(1)
    assert admit_many(engine, 4, k) == 3


def test_burst_caps_requests_in_one_second() -> None:
    engine, clock = make()
    k = key(Limits(requests_per_minute=100, burst=2))
    clock.advance(0.25)
    assert admit_many(engine, 3, k) == 2
    refused = decide(engine, k)
    assert refused.refused_by == "key:k1 burst"
    assert refused.retry_after == pytest.approx(1.05)  # 1 s in 0.1 s slots, from slot 0.2
    clock.advance(0.75)
    assert not decide(engine, k).allowed  # no second boundary to reset it
    clock.advance(0.3)
    assert admit_many(engine, 3, k) == 2


def test_max_concurrent_frees_a_slot_on_release_once() -> None:
    engine, _ = make()
    k = key(Limits(max_concurrent=2))
    first, second = decide(engine, k), decide(engine, k)
    assert first.allowed and second.allowed
    refused = decide(engine, k)
    assert refused.refused_by == "key:k1 max_concurrent"
    assert refused.retry_after == CONCURRENCY_RETRY_AFTER
    assert refused.limit is None  # no request-count window to report
    release(first)
    release(first)  # idempotent: frees one slot, not two
    assert engine.usage("key", "k1")["in_flight"] == 1
    third = decide(engine, k)
    assert third.allowed
    assert not decide(engine, k).allowed


def test_tokens_per_hour_counts_released_tokens() -> None:
    engine, clock = make()
    k = key(Limits(tokens_per_hour=100))
    first = decide(engine, k)
    second = decide(engine, k)  # admitted: the hour's count is still 0 (tokens come at the end)
    release(first, 60)
    release(second, 60)  # a running request may overshoot by its own size
    release(second, 60)  # idempotent: no tokens twice
    assert engine.usage("key", "k1")["tokens_hour"] == 120
    refused = decide(engine, k)
    assert refused.refused_by == "key:k1 tokens_per_hour"
    assert refused.retry_after == pytest.approx(HOUR + 60)
    clock.advance(HOUR + 60)
    assert decide(engine, k).allowed


def test_tokens_below_the_limit_admit() -> None:
    engine, _ = make()
    k = key(Limits(tokens_per_hour=100))
    release(decide(engine, k), 99)
    assert decide(engine, k).allowed


def test_all_subjects_must_admit_and_refusal_consumes_nothing() -> None:
    engine, clock = make()
    k = key(Limits(requests_per_minute=10))
    t = Subject("tenant", "t1", Limits(requests_per_minute=3, max_concurrent=50))
    m = Subject("model", "llama", Limits(requests_per_hour=1000))
    decisions = [decide(engine, k, t, m) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 2
    assert {d.refused_by for d in decisions[3:]} == {"tenant:t1 requests_per_minute"}
    for sid in (("key", "k1"), ("tenant", "t1"), ("model", "llama")):
        assert engine.usage(*sid)["requests_minute"] == 3, sid
        assert engine.usage(*sid)["in_flight"] == 3, sid
    # the key alone still has room: the refused requests took nothing from it
    assert admit_many(engine, 10, k) == 7

    # two subjects refuse: the longer wait is the one reported
    clock.advance(61)
    burst_key = key(Limits(burst=1), "k2")
    assert decide(engine, burst_key, t).allowed
    assert admit_many(engine, 2, t) == 2
    refused = decide(engine, burst_key, t)
    assert refused.refused_by == "tenant:t1 requests_per_minute"
    assert refused.retry_after == pytest.approx(61)


def test_same_subject_twice_counts_once() -> None:
    engine, _ = make()
    k = key(Limits(requests_per_minute=2))
    assert admit_many(engine, 3, k, k) == 2


def test_remaining_limit_and_reset_count_down() -> None:
    engine, clock = make()
    k = key(Limits(requests_per_minute=5, requests_per_hour=100))
    clock.advance(15)
    seen = []
    for _ in range(6):
        d = decide(engine, k)
        seen.append((d.allowed, d.limit, d.remaining, d.reset))
        clock.advance(1)
    # reset: seconds until the oldest counted request leaves the window (the first
    # request, counted in slot 15, leaves at 76)
    assert seen == [
        (True, 5, 4, pytest.approx(60)),
        (True, 5, 3, pytest.approx(60)),
        (True, 5, 2, pytest.approx(59)),
        (True, 5, 1, pytest.approx(58)),
        (True, 5, 0, pytest.approx(57)),
        (False, 5, 0, pytest.approx(56)),
    ]
    # per-hour window when there is no per-minute limit; the tightest subject is reported
    tenant = Subject("tenant", "t1", Limits(requests_per_hour=3))
    wide = key(Limits(requests_per_minute=50), "k2")
    d = decide(engine, wide, tenant)
    assert (d.limit, d.remaining, d.reset) == (3, 2, pytest.approx(HOUR))
    for expected in (1, 0):
        assert decide(engine, wide, tenant).remaining == expected
    d = decide(engine, wide, tenant)
    assert (d.allowed, d.limit, d.remaining) == (False, 3, 0)


def test_local_share_bounds_the_cluster() -> None:
    """Three nodes, no Redis: each enforces ceil(10 / 3) = 4, so the cluster admits 12."""
    limit, n = 10, 3
    clock = FakeClock()
    nodes = [QuotaEngine(f"node-{i}", None, lambda: n, clock=clock) for i in range(n)]
    k = key(Limits(requests_per_minute=limit))
    per_node = [0] * n
    for i in range(100):  # round-robin: traffic spread evenly
        per_node[i % n] += decide(nodes[i % n], k).allowed
    assert sum(per_node) <= limit + n - 1
    assert per_node == [4, 4, 4]
    # a node getting all the traffic, with no peer to borrow from, admits only its share
    clock.advance(61)
    assert admit_many(nodes[0], 20, k) == 4
    refused = decide(nodes[0], k)
    assert (refused.limit, refused.remaining) == (10, 0)  # the key's limit, what is left here
    # max_concurrent shares likewise: ceil(5 / 3) = 2 in flight per node
    k2 = key(Limits(max_concurrent=5), "k2")
    held = [decide(nodes[1], k2) for _ in range(3)]
    assert [d.allowed for d in held] == [True, True, False]
    assert held[2].refused_by == "key:k2 max_concurrent"
    assert decide(nodes[2], k2).allowed  # another node has its own share
    release(held[0])
    assert decide(nodes[1], k2).allowed


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=300),
    st.integers(min_value=1, max_value=4),
)
def test_sliding_windows_never_exceed_a_share(gaps: list[float], n: int) -> None:
    """Any arrival pattern: on one node, every 60 s interval and every 1 s interval
    (wherever it starts: there are no window edges) stays within the node's share."""
    engine, clock = make(nodes=n)
    k = key(Limits(requests_per_minute=7, burst=3))
    admitted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if decide(engine, k).allowed:
            admitted.append(clock.now)
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u <= t + 60) <= -(-7 // n)
        assert sum(1 for u in admitted[i:] if u <= t + 1) <= -(-3 // n)


def test_limits_from_dict() -> None:
    camel = {
        "requestsPerMinute": 60,
        "requestsPerHour": 1000,
        "tokensPerHour": 50_000,
        "burstLimit": 5,
        "maxConcurrent": 2,
    }
    expected = Limits(60, 1000, 50_000, 5, 2)
    assert Limits.from_dict(camel) == expected
    assert Limits.from_dict({"requests_per_minute": 60, "burst": None}) == Limits(60)
    assert Limits.from_dict({}) == Limits()
    assert Limits.from_dict({"burst": 5, "burstLimit": 5}).burst == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"requestsPerMinute": 0}, "requests_per_minute: must be > 0"),
        ({"maxConcurrent": -1}, "max_concurrent: must be > 0"),
        ({"tokensPerHour": "100"}, "tokens_per_hour: expected a positive integer"),
        ({"burstLimit": 2.5}, "burst: expected a positive integer"),
        ({"requests_per_hour": True}, "requests_per_hour: expected a positive integer"),
        ({"requestPerMinute": 5}, "unknown field 'requestPerMinute'"),
        ({"burst": 5, "burstLimit": 6}, "burst given twice"),
    ],
)
def test_limits_from_dict_rejects_bad_values(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Limits.from_dict(data)


def test_limits_and_subject_validate_on_construction() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Limits(requests_per_minute=0)
    with pytest.raises(ValueError, match="bad kind or empty id"):
        Subject("key", "", Limits())
    with pytest.raises(ValueError, match="bad kind or empty id"):
        Subject("a:b", "x", Limits())
