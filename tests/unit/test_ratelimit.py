"""Unit tests of the rate limiter's local mode (`node/limits/ratelimit.py`).

Every test uses a fake clock, so time only moves when a test says so. `decide`
drives `admit` without an event loop and fails if it ever suspends: local mode
(and the no-rules path) must decide without awaiting any I/O.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.limits.ratelimit import Decision, RateLimiter, Rule


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Nodes:
    """A settable node count, read by the limiter on every decision."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self) -> int:
        return self.n


def make(
    *rules: Rule, nodes: int | Nodes = 1, clock: FakeClock | None = None, name: str = "node-1"
) -> tuple[RateLimiter, FakeClock]:
    clock = clock or FakeClock()
    count = nodes if isinstance(nodes, Nodes) else Nodes(nodes)
    limiter = RateLimiter(name, None, count, clock=clock)
    limiter.set_rules({r.scope: r for r in rules})
    return limiter, clock


def decide(limiter: RateLimiter, model: str | None = "m") -> Decision:
    coro = limiter.admit(model)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("admit suspended: local decisions must not await anything")


def admit_many(limiter: RateLimiter, count: int, model: str | None = "m") -> int:
    return sum(decide(limiter, model).allowed for _ in range(count))


def test_no_rules_allows_without_suspending() -> None:
    limiter, _ = make()
    assert all(decide(limiter).allowed for _ in range(1000))
    limiter.set_rules({"other": Rule("other", 1.0, 1.0)})
    assert admit_many(limiter, 50, "m") == 50  # no rule applies to "m"
    assert admit_many(limiter, 50, None) == 50
    assert limiter.backend == "local"
    assert limiter.redis_healthy is None


def test_single_rule_admits_burst_then_refills_at_rate() -> None:
    limiter, clock = make(Rule("*", rate=10.0, burst=5.0))
    assert admit_many(limiter, 5) == 5
    refused = decide(limiter)
    assert refused == Decision(False, pytest.approx(0.1), "*")
    clock.advance(0.05)
    assert decide(limiter).retry_after == pytest.approx(0.05)
    clock.advance(0.05)
    assert admit_many(limiter, 3) == 1
    clock.advance(60.0)  # a long idle refills only up to the burst
    assert admit_many(limiter, 20) == 5
    admitted = 0
    for _ in range(1000):  # one simulated second, 1000 requests
        clock.advance(0.001)
        admitted += decide(limiter).allowed
    assert admitted == 10


def test_share_with_three_nodes_divides_rate_and_burst() -> None:
    limiter, clock = make(Rule("*", rate=30.0, burst=9.0), nodes=3)
    assert admit_many(limiter, 10) == 3  # capacity 9 / 3
    assert decide(limiter).retry_after == pytest.approx(0.1)  # refill 30 / 3 per second
    clock.advance(1.0)
    assert admit_many(limiter, 20) == 3  # 10 tokens arrived, capped at 3
    small, _ = make(Rule("*", rate=30.0, burst=2.0), nodes=3)
    assert admit_many(small, 5) == 1  # capacity never below one request


def test_node_count_change_rescales_tokens() -> None:
    nodes = Nodes(2)
    limiter, clock = make(Rule("*", rate=30.0, burst=12.0), nodes=nodes)
    assert admit_many(limiter, 3) == 3  # 3 of 6 left: half full
    nodes.n = 3
    assert admit_many(limiter, 10) == 2  # half of the new capacity 4
    assert decide(limiter).retry_after == pytest.approx(0.1)  # refill now 30 / 3
    clock.advance(10.0)
    nodes.n = 1
    assert admit_many(limiter, 20) == 12  # full stays full: 4 of 4 -> 12 of 12
    nodes.n = 4
    clock.advance(10.0)
    assert admit_many(limiter, 20) == 3  # and shrinks to the new capacity, not above


def test_two_rules_consume_from_both_only_when_both_allow() -> None:
    limiter, clock = make(Rule("*", rate=100.0, burst=3.0), Rule("m", rate=1.0, burst=1.0))
    assert decide(limiter, "m").allowed
    assert decide(limiter, "m") == Decision(False, pytest.approx(1.0), "m")
    # the refusal by "m" took nothing from "*": two global tokens remain
    assert admit_many(limiter, 3, "other") == 2
    assert decide(limiter, "other") == Decision(False, pytest.approx(0.01), "*")

    clock.advance(1.0)  # "m" refilled to 1, "*" to its burst of 3
    assert admit_many(limiter, 3, "other") == 3
    assert decide(limiter, "m") == Decision(False, pytest.approx(0.01), "*")
    clock.advance(0.01)
    assert decide(limiter, "m").allowed  # the global refusal took nothing from "m"
    # both refuse: the answer names the scope that needs longer
    assert decide(limiter, "m") == Decision(False, pytest.approx(1.0), "m")

    scopes = limiter.stats()["scopes"]
    assert (scopes["*"]["admitted"], scopes["*"]["rejected"]) == (7, 4)
    assert (scopes["m"]["admitted"], scopes["m"]["rejected"]) == (2, 2)


def test_model_named_like_the_global_scope_checks_the_global_rule_once() -> None:
    limiter, _ = make(Rule("*", rate=1.0, burst=4.0))
    assert admit_many(limiter, 10, "*") == 4


@pytest.mark.parametrize(("rate", "burst"), [(30.0, 15.0), (30.0, 1.0), (7.0, 2.0)])
def test_three_nodes_round_robin_stay_within_the_documented_bound(
    rate: float, burst: float
) -> None:
    clock, seconds, step = FakeClock(), 10.0, 0.001
    limiters = [
        make(Rule("*", rate, burst), nodes=3, clock=clock, name=f"n{i}")[0] for i in range(3)
    ]
    per_node = [0, 0, 0]
    for i in range(int(seconds / step)):
        clock.advance(step)
        node = i % 3
        per_node[node] += decide(limiters[node]).allowed
    total = sum(per_node)
    assert total <= rate * seconds + max(burst, 3)
    # a full bucket wastes the refill that arrives before the node's next request
    # (up to 3 ms here); with a capacity of 1 that is ~1% of the rate
    assert total >= 0.98 * rate * seconds
    for count in per_node:  # each node: its capacity plus its refill
        assert count <= max(1.0, burst / 3) + rate / 3 * seconds + 1e-6


def test_one_node_receiving_all_traffic_admits_only_its_share() -> None:
    rate, burst, seconds = 30.0, 15.0, 10.0
    limiter, clock = make(Rule("*", rate, burst), nodes=3)
    admitted = 0
    for _ in range(10_000):
        clock.advance(seconds / 10_000)
        admitted += decide(limiter).allowed
    assert admitted == pytest.approx(rate / 3 * seconds + burst / 3, abs=1)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.5, 100.0),
    burst=st.floats(1.0, 50.0),
    n=st.integers(1, 5),
    gaps=st.lists(st.floats(0.0, 0.2), min_size=1, max_size=150),
)
def test_any_window_admits_at_most_capacity_plus_refill(
    rate: float, burst: float, n: int, gaps: list[float]
) -> None:
    limiter, clock = make(Rule("*", rate, burst), nodes=n)
    times: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if decide(limiter).allowed:
            times.append(clock.now)
    capacity, share = max(1.0, burst / n), rate / n
    for i, j in itertools.combinations_with_replacement(range(len(times)), 2):
        assert j - i + 1 <= capacity + share * (times[j] - times[i]) + 1e-6


def test_set_rules_keeps_unchanged_scopes_and_drops_removed_ones() -> None:
    limiter, clock = make(Rule("*", 100.0, 100.0), Rule("m", 1.0, 2.0))
    assert admit_many(limiter, 3, "m") == 2
    limiter.set_rules(
        {"*": Rule("*", 100.0, 100.0), "m": Rule("m", 1.0, 2.0), "n": Rule("n", 5.0, 5.0)}
    )
    assert not decide(limiter, "m").allowed  # still empty: state kept
    assert limiter.stats()["scopes"]["m"]["admitted"] == 2

    limiter.set_rules({"*": Rule("*", 100.0, 100.0)})
    assert set(limiter.stats()["scopes"]) == {"*"}
    assert admit_many(limiter, 5, "m") == 5  # only the global rule applies now
    limiter.set_rules({"*": Rule("*", 100.0, 100.0), "m": Rule("m", 1.0, 2.0)})
    assert limiter.stats()["scopes"]["m"]["admitted"] == 0  # re-added: fresh
    assert admit_many(limiter, 3, "m") == 2

    clock.advance(1.0)  # "m" back to 1 of 2: half full
    limiter.set_rules({"*": Rule("*", 100.0, 100.0), "m": Rule("m", 1.0, 8.0)})
    assert admit_many(limiter, 10, "m") == 4  # a changed rule keeps the fill ratio


def test_set_rules_rejects_a_rule_under_the_wrong_key_and_changes_nothing() -> None:
    limiter, _ = make(Rule("*", 1.0, 1.0))
    with pytest.raises(ValueError, match="keyed"):
        limiter.set_rules({"m": Rule("other", 1.0, 1.0)})
    assert set(limiter.stats()["scopes"]) == {"*"}


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (1.0, 0.5), (1.0, 0.0)]
)
def test_rule_rejects_invalid_numbers(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        Rule("*", rate, burst)


def test_stats_report_rule_share_and_counters() -> None:
    limiter, _ = make(Rule("*", 40.0, 20.0), Rule("m", 8.0, 2.0), nodes=4, name="gw-7")
    assert admit_many(limiter, 3, "m") == 1  # "m" share: capacity max(1, 2/4) = 1
    assert admit_many(limiter, 6, "x") == 4  # "*" share: 5 tokens, one already taken
    assert limiter.stats() == {
        "node": "gw-7",
        "backend": "local",
        "nodes": 4,
        "scopes": {
            "*": {
                "rate": 40.0,
                "burst": 20.0,
                "local_share_rate": 10.0,
                "local_share_burst": 5.0,
                "admitted": 5,
                "rejected": 2,
            },
            "m": {
                "rate": 8.0,
                "burst": 2.0,
                "local_share_rate": 2.0,
                "local_share_burst": 1.0,
                "admitted": 1,
                "rejected": 2,
            },
        },
    }
