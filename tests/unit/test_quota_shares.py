"""The quota bound without Redis, on real `QuotaEngine`s sharing one fake clock.

A small event simulation stands in for the mesh: requests arrive at random nodes
at random times (bursts placed across window edges), and every node polls every
peer about once a second, as `node/ha/peers.py` does. A poll is sent, the peer's
report is taken a little later (it is JSON, as on the wire), and the poller runs
`exchange` later still; some polls fail. The engines are the real ones: only
the transport is simulated. docs/quotas.md has the proof these tests check.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.limits.quotas import Limits, QuotaEngine, Subject
from tests.unit.test_quotas import FakeClock, decide, release

T0 = 1_000_000.0


class Mesh:
    """N engines, their polls and their arrivals, in time order."""

    def __init__(self, n: int, seed: int, fail: float = 0.1, every: float = 1.0) -> None:
        self.clock = FakeClock(T0)
        self.n = n
        self.engines = [
            QuotaEngine(f"node-{i}", None, lambda: n, clock=self.clock) for i in range(n)
        ]
        self.rng = random.Random(seed)
        self.fail, self.every = fail, every
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.admitted: list[tuple[float, int]] = []  # (time, node)
        for i in range(n):  # staggered polls, about once a second each
            self.at(T0 + self.rng.uniform(0, 1), "poll", i)

    def at(self, when: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, data))

    def arrive(self, when: float, node: int, subject: Subject) -> None:
        self.at(when, "arrive", (node, subject))

    def run(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            when, _, kind, data = heapq.heappop(self.events)
            self.clock.now = when
            getattr(self, "_" + kind)(data)

    def _arrive(self, data: tuple[int, Subject]) -> None:
        node, subject = data
        decision = decide(self.engines[node], subject)
        if decision.allowed:
            self.admitted.append((self.clock.now, node))
            release(decision)

    def _poll(self, i: int) -> None:
        """Node i asks every peer; each answer is taken a bit later, and used later still."""
        sent = self.clock.now
        answers: dict[str, Any] = {}
        for j in range(self.n):
            if j != i:
                answers[f"node-{j}"] = None
                if self.rng.random() >= self.fail:
                    self.at(sent + self.rng.uniform(0, 0.4), "answer", (i, j, sent, answers))
        self.at(sent + 0.5 + self.rng.uniform(0, 0.3), "exchange", (i, answers))
        self.at(sent + self.every * self.rng.uniform(0.9, 1.1), "poll", i)

    def _answer(self, data: tuple[int, int, float, dict[str, Any]]) -> None:
        _, j, sent, answers = data
        report = json.loads(json.dumps(self.engines[j].share_report()))
        answers[f"node-{j}"] = (sent, report)

    def _exchange(self, data: tuple[int, dict[str, Any]]) -> None:
        i, answers = data
        self.engines[i].exchange(answers)


def most_in_any_window(times: list[float], span: float) -> int:
    """The most admissions in any closed interval of `span` seconds."""
    times = sorted(times)
    most, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - span:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


def phases(rng: random.Random, n: int, start: float, length: float) -> Iterator[tuple[float, int]]:
    """Phases of 3 to 40 s: traffic to one node (so it borrows), then to another (so the
    lenders want their shares back while it still uses them), or to all; at random rates,
    with bursts that straddle window edges."""
    t = start
    while t < start + length:
        end = t + rng.uniform(3, 40)
        favourite = rng.randrange(n) if rng.random() < 0.7 else None
        rate = rng.uniform(0.2, 8)
        while t < end:
            t += rng.expovariate(rate)
            yield t, favourite if favourite is not None else rng.randrange(n)
        if rng.random() < 0.3:
            t += rng.uniform(0, 70)  # a quiet spell: some shares come back


SEEDS = st.integers(min_value=0, max_value=2**32)
MESHES = st.integers(min_value=2, max_value=4)  # nodes that can lend to each other


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=40), SEEDS)
def test_no_minute_admits_more_than_the_bound(n: int, limit: int, seed: int) -> None:
    """Random arrivals across window edges, polls that fail and lag: every 60 s
    interval admits at most L + N - 1, whoever lends to whom."""
    mesh = Mesh(n, seed)
    subject = Subject("key", "k1", Limits(requests_per_minute=limit, burst=max(1, limit // 3)))
    for when, node in phases(mesh.rng, n, T0, 300):
        mesh.arrive(when, node, subject)
    mesh.run(T0 + 400)
    times = [t for t, _ in mesh.admitted]
    assert most_in_any_window(times, 60.0) <= limit + n - 1
    assert most_in_any_window(times, 1.0) <= max(1, limit // 3) + n - 1


@settings(max_examples=6, deadline=None)
@given(MESHES, SEEDS)
def test_no_hour_admits_more_than_the_bound(n: int, seed: int) -> None:
    """The same for an hour window (1-minute slots), over a simulated 3 hours. Polls
    come every 15 s here (to keep the test short): leases lapse between them too."""
    limit = 60
    mesh = Mesh(n, seed, fail=0.2, every=15.0)
    subject = Subject("tenant", "t1", Limits(requests_per_hour=limit))
    t = T0
    while t < T0 + 3 * 3600:
        t += mesh.rng.expovariate(1 / 120)
        favourite = mesh.rng.randrange(n)
        for _ in range(mesh.rng.randint(1, 30)):
            mesh.arrive(t + mesh.rng.uniform(0, 5), favourite, subject)
    mesh.run(T0 + 3 * 3600)
    assert most_in_any_window([t for t, _ in mesh.admitted], 3600.0) <= limit + n - 1


@settings(max_examples=6, deadline=None)
@given(MESHES, st.integers(min_value=4, max_value=60), SEEDS)
def test_one_busy_node_borrows_nearly_the_whole_limit(n: int, limit: int, seed: int) -> None:
    """All traffic reaches node 0; the idle peers lend it all but one request each."""
    mesh = Mesh(n, seed, fail=0.0)
    subject = Subject("key", "k1", Limits(requests_per_minute=limit))
    for k in range(4 * limit):  # twice the limit per minute, for two minutes
        mesh.arrive(T0 + 5 + k * 30 / limit, 0, subject)
    mesh.run(T0 + 5 + 120)
    share = -(-limit // n)
    late = [t for t, _ in mesh.admitted if t > T0 + 5 + 60]  # the second minute
    assert len(late) >= min(limit, n * share - (n - 1)), (len(late), share)
    assert {node for _, node in mesh.admitted} == {0}
    # the headers show the key's limit, and what node 0 may still admit
    refused = decide(mesh.engines[0], subject)
    assert (refused.allowed, refused.limit, refused.remaining) == (False, limit, 0)


def test_a_lender_whose_traffic_returns_gets_its_share_back() -> None:
    """Node 1 lends to node 0, then gets traffic: it recalls, node 0 returns what it no
    longer uses, and node 1 is back to its own share, all within the bound."""
    mesh = Mesh(2, seed=7, fail=0.0)
    subject = Subject("key", "k1", Limits(requests_per_minute=10))
    for k in range(20):  # node 0 busy for 10 s: it borrows 4 of node 1's 5
        mesh.arrive(T0 + 5 + k / 2, 0, subject)
    for k in range(10):  # then, 80 s later, node 1 gets 10 requests, one a second
        mesh.arrive(T0 + 100 + k, 1, subject)
    mesh.run(T0 + 120)
    by_node = [sum(1 for t, node in mesh.admitted if node == i and t < T0 + 60) for i in (0, 1)]
    assert by_node == [9, 0]
    later = sum(1 for t, node in mesh.admitted if node == 1 and t >= T0 + 100)
    assert later >= 5  # its whole share again
    assert most_in_any_window([t for t, _ in mesh.admitted], 60.0) <= 10 + 2 - 1


def test_an_unreachable_borrower_leaves_the_share_out_for_a_whole_window() -> None:
    """A lender that cannot reach its borrower takes its share back only after the
    borrower's lease and one whole window have passed."""
    clock = FakeClock(T0)
    lender = QuotaEngine("a", None, lambda: 2, clock=clock)
    k = Subject("key", "k1", Limits(requests_per_minute=10))
    wants = {"ready": True, "wants": [["key", "k1", "requests_per_minute", 10]]}
    lender.exchange({"b": (clock.now, {"ready": True})})  # now it knows its peers
    lender.exchange({"b": (clock.now, wants)})
    grants = lender.share_report()["grants"]
    assert grants == {"b": [["key", "k1", "requests_per_minute", 1, 4, False]]}
    assert decide(lender, k).allowed  # its reserve of one
    assert not decide(lender, k).allowed
    lender.exchange({"b": None})  # b no longer answers: withdrawn, kept out
    assert lender.share_report()["grants"] == {}
    clock.advance(60 + 3 + 1 - 0.01)  # its first request has left the window: the reserve
    assert sum(decide(lender, k).allowed for _ in range(10)) == 1
    clock.advance(0.02)
    assert sum(decide(lender, k).allowed for _ in range(10)) == 4  # its share of 5 again


def test_a_node_that_has_not_polled_its_peers_neither_lends_nor_borrows() -> None:
    clock = FakeClock(T0)
    node = QuotaEngine("a", None, lambda: 3, clock=clock)
    k = Subject("key", "k1", Limits(requests_per_minute=9))
    assert sum(decide(node, k).allowed for _ in range(9)) == 3  # its share of three nodes
    assert node.share_report()["ready"] is False
    grant = {"ready": True, "grants": {"a": [["key", "k1", "requests_per_minute", 1, 2, False]]}}
    node.exchange({"b": (clock.now, grant), "c": None})
    assert decide(node, k).allowed  # a grant is used from the first round it is seen
    report = node.share_report()
    assert report["ready"] is True and report["grants"] == {}  # lends only from the next


def test_malformed_peer_parts_are_ignored() -> None:
    clock = FakeClock(T0)
    node = QuotaEngine("a", None, lambda: 2, clock=clock)
    k = Subject("key", "k1", Limits(requests_per_minute=10))
    bad_rows = [
        ["key", "k1", "requests_per_minute", "1", 4, False],  # a grant id that is no int
        ["key", "k1", "requests_per_minute", 1, True, False],  # a bool is no amount
        ["key", "k1", "requests_per_minute", 1, -3, False],
        ["key", "k1", "no_such_limit", 1, 4, False],
        "not a row",
    ]
    node.exchange({"b": (clock.now, {"ready": True, "grants": {"a": bad_rows}})})
    node.exchange({"b": (clock.now, {"ready": True, "grants": "nonsense", "wants": [[1, 2]]})})
    node.exchange({"b": (clock.now, {"wants": {"not": "a list"}, "returned": None})})
    assert sum(decide(node, k).allowed for _ in range(10)) == 5  # its own share, no more


def test_a_node_that_knows_few_members_takes_the_smallest_share() -> None:
    """Before its journal or the leader has told it the members, a node counts the
    voters it was configured with, so its share is never larger than the mesh's."""
    from types import SimpleNamespace

    from node.app import Node

    def size(members: int, peers: int) -> int:
        raft = SimpleNamespace(
            state=SimpleNamespace(members={f"n{i}": {} for i in range(members)}),
            settings=SimpleNamespace(peers=tuple(f"10.0.0.{i}:4321" for i in range(peers))),
        )
        return Node.mesh_size(SimpleNamespace(raft=raft))  # type: ignore[arg-type]

    assert size(members=0, peers=2) == 3  # just started: the configured voters
    assert size(members=1, peers=2) == 3
    assert size(members=4, peers=2) == 4  # a read-only member or one added at runtime
    assert size(members=0, peers=0) == 1  # a lone node


# -- a lowered limit ------------------------------------------------------------------------

SETTLE = 1.1 + 0.8 + 3.0  # a lender's next round after the change, then a whole LEASE


@settings(max_examples=12, deadline=None)
@given(
    MESHES,
    st.integers(min_value=20, max_value=200),
    st.integers(min_value=1, max_value=12),
    st.booleans(),
    SEEDS,
)
def test_a_lowered_limit_holds_from_one_round_after_the_change(
    n: int, before: int, after: int, spread: bool, seed: int
) -> None:
    """Node 0 borrows under a large limit, then the limit is lowered: the nodes decide
    with the new one from the change on; the lenders stay idle, or get traffic too. Every
    60 s interval that starts one poll round and a LEASE after the change admits at most
    L' + N - 1 (docs/quotas.md). No poll fails: a failed poll withdraws every grant."""
    mesh = Mesh(n, seed, fail=0.0)
    old = Subject("key", "k1", Limits(requests_per_minute=before))
    new = Subject("key", "k1", Limits(requests_per_minute=after))
    for k in range(3 * before):  # node 0 busy for a minute and a half: it borrows
        mesh.arrive(T0 + 5 + k * 30 / before, 0, old)
    change = T0 + 5 + 90
    for i in range(n if spread else 1):  # these decide with the new limit from the change on
        mesh.arrive(change, i, new)
    for when, node in phases(mesh.rng, n, change, 200):
        mesh.arrive(when, node if spread and mesh.rng.random() < 0.5 else 0, new)
    mesh.run(change + 300)
    late = [t for t, _ in mesh.admitted if t >= change + SETTLE]
    assert most_in_any_window(late, 60.0) <= after + n - 1


def test_a_borrower_caps_its_loans_at_the_limit_it_knows_now() -> None:
    """L = 1000/h on 3 nodes: b borrows, then L is lowered to 10 (bound 12). b uses at
    once no more of each loan than a lender could lend under 10, and the lender shrinks
    its grant (the excess kept out a whole window) at its next round."""
    clock = FakeClock(T0)
    lender = QuotaEngine("a", None, lambda: 3, clock=clock)
    borrower = QuotaEngine("b", None, lambda: 3, clock=clock)
    big = Subject("key", "k1", Limits(requests_per_hour=1000))
    small = Subject("key", "k1", Limits(requests_per_hour=10))
    idle = {"ready": True}
    lender.exchange({"b": (clock.now, idle), "c": (clock.now, idle)})
    borrower.exchange({"a": (clock.now, idle), "c": (clock.now, idle)})
    assert sum(decide(borrower, big).allowed for _ in range(200)) == 200  # it wants more
    lender.exchange({"b": (clock.now, borrower.share_report()), "c": (clock.now, idle)})
    assert lender.share_report()["grants"]["b"][0][4] == 333
    borrower.exchange({"a": (clock.now, lender.share_report()), "c": (clock.now, idle)})
    assert borrower.shares.held(("key", "k1", "requests_per_hour"), 334, clock.now) == 667
    # lowered to 10: base 4, so a loan counts for at most 3
    assert not decide(borrower, small).allowed  # 200 admitted, it holds 4 + 3
    assert borrower.shares.held(("key", "k1", "requests_per_hour"), 4, clock.now) == 7
    # the borrower's wants carry the limit it decides with: the lender shrinks its grant
    assert borrower.share_report()["wants"] == [["key", "k1", "requests_per_hour", 10]]
    lender.exchange({"b": (clock.now, borrower.share_report()), "c": (clock.now, idle)})
    assert lender.share_report()["grants"]["b"][0][4] == 3
    assert lender.shares.stats()["pending"] == 330
    assert not decide(lender, small).allowed  # 4 - 3 - 330: it holds nothing for a while
    clock.advance(3 + 3600 + 1)
    lender.exchange({"b": (clock.now, borrower.share_report()), "c": (clock.now, idle)})
    assert sum(decide(lender, small).allowed for _ in range(10)) == 1  # 4 - 3 lent


def test_a_forged_grant_counts_for_no_more_than_a_lender_could_lend() -> None:
    clock = FakeClock(T0)
    node = QuotaEngine("a", None, lambda: 2, clock=clock)
    k = Subject("key", "k1", Limits(requests_per_minute=10))
    huge = [["key", "k1", "requests_per_minute", 1, 10**9, False]]
    node.exchange({"b": (clock.now, {"ready": True, "grants": {"a": huge}})})
    assert sum(decide(node, k).allowed for _ in range(100)) == 5 + 4


# -- many keys ------------------------------------------------------------------------------


class CountingPart(dict):
    """A peer's report part that counts how often its lists are read."""

    reads = 0

    def get(self, field: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(field, default)


def test_a_round_with_many_keys_is_linear_and_capped() -> None:
    """A peer that wants 5000 keys: the lender lends for MAX_KEYS of them, and reads each
    list of the peer's part once per round, not once per grant."""
    from node.limits.shares import MAX_KEYS

    clock = FakeClock(T0)
    lender = QuotaEngine("a", None, lambda: 2, clock=clock)
    calls = {"count": 0, "base": 0}
    count, base = lender._count_of, lender._base_of

    def counted_count(key: Any, now: float) -> int:
        calls["count"] += 1
        return count(key, now)

    def counted_base(key: Any, limit: int | None) -> int:
        calls["base"] += 1
        return base(key, limit)

    lender._count_of, lender._base_of = counted_count, counted_base  # type: ignore[method-assign]
    wants = [["key", f"k{i}", "requests_per_minute", 10] for i in range(5000)]
    lender.exchange({"b": (clock.now, {"ready": True})})
    lender.exchange({"b": (clock.now, {"ready": True, "wants": wants})})
    grants = lender.share_report()["grants"]["b"]
    assert len(grants) == MAX_KEYS  # lends for at most MAX_KEYS keys
    returned = [[*row[:3], row[3]] for row in grants]
    part = CountingPart(ready=True, wants=wants, returned={"a": returned[:500]})
    calls.update(count=0, base=0)
    lender.exchange({"b": (clock.now, part)})
    assert part.reads <= 6  # a few reads a round (the old code: two per grant, 2000)
    assert calls["count"] + calls["base"] <= 4 * MAX_KEYS
    assert len(lender.share_report()["grants"]["b"]) == MAX_KEYS  # 500 back, 500 lent anew


def test_wants_are_capped_and_pruned_without_any_report() -> None:
    """On a lone node nobody reads its report: wants lapse as they are recorded, and at
    most MAX_KEYS are kept. `client` subjects (one per caller address of an open
    publication) never want: anyone can make them."""
    from node.limits.shares import MAX_KEYS

    clock = FakeClock(T0)
    node = QuotaEngine("a", None, lambda: 1, clock=clock)
    for i in range(MAX_KEYS + 500):
        decide(node, Subject("key", f"k{i}", Limits(requests_per_minute=2)))
    assert len(node.shares._wants) == MAX_KEYS
    clock.advance(61)
    decide(node, Subject("key", "late", Limits(requests_per_minute=2)))
    assert list(node.shares._wants) == [("key", "late", "requests_per_minute")]
    decide(node, Subject("client", "m@10.0.0.1", Limits(requests_per_minute=2)))
    assert len(node.shares._wants) == 1
