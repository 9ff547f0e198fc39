"""A node of several processes borrows and lends quota shares for its processes through
its control process (node/plane/node_shares.py), on the real engines of
tests/unit/test_quota_shares.py's simulated mesh: node 0 runs P data-plane processes,
each with its own engine, behind a control process that takes part in the peer poll
and, every second, sends each process its parts (JSON, as on the wire) and reads back
what it wants and gave back; some of those exchanges fail too."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.limits.quotas import SPANS, Limits, QuotaEngine, Subject
from node.limits.shares import Shares
from node.plane.node_shares import NodeShares, borrow_from_control
from node.plane.siblings import SocketClients
from tests.unit.test_quota_shares import SEEDS, T0, Mesh, most_in_any_window, phases
from tests.unit.test_quotas import decide, release


class ProcessesMesh(Mesh):
    """Node 0 is a control process and `p` data-plane processes; the others, one each."""

    def __init__(self, n: int, p: int, seed: int, fail: float = 0.1) -> None:
        super().__init__(n, seed, fail)
        self.processes = [
            QuotaEngine(
                "node-0",
                None,
                lambda: n * p,
                clock=self.clock,
                shares=Shares("node-0", SPANS, capped=False, shrinks=False),
            )
            for _ in range(p)
        ]
        sockets = {f"p{k}": Path(f"p{k}") for k in range(p)}
        self.control = NodeShares("node-0", SPANS, sockets, SocketClients(), lambda: n, self.clock)
        self.at(T0 + self.rng.uniform(0, 1), "tick", None)

    def _arrive(self, data: tuple[int, Subject]) -> None:
        node, subject = data
        if node != 0:
            return super()._arrive(data)
        decision = decide(self.rng.choice(self.processes), subject)
        if decision.allowed:
            self.admitted.append((self.clock.now, 0))
            release(decision)
        return None

    def _answer(self, data: tuple[int, int, float, dict[str, Any]]) -> None:
        _, j, sent, answers = data
        if j != 0:
            return super()._answer(data)
        answers["node-0"] = (sent, json.loads(json.dumps(self.control.outer.report(sent))))
        return None

    def _exchange(self, data: tuple[int, dict[str, Any]]) -> None:
        i, answers = data
        if i != 0:
            return super()._exchange(data)
        self.control.exchange(answers)
        return None

    def _tick(self, _: None) -> None:
        """The control process's exchange with each process; its answer is read a bit
        later (or never: the process holds its parts out until a window has passed)."""
        for k, (name, sent) in enumerate(self.control.sends(self.clock.now).items()):
            if self.rng.random() < self.fail:
                self.at(self.clock.now + 1.0, "answered", (name, None))
                continue
            sent = json.loads(json.dumps(sent))
            report = borrow_from_control(self.processes[k], sent["sent_at"], sent["part"])
            answer = json.dumps(report).encode()
            self.at(self.clock.now + self.rng.uniform(0, 0.3), "answered", (name, answer))
        self.at(self.clock.now + 1.0, "tick", None)

    def _answered(self, data: tuple[str, bytes | None]) -> None:
        self.control.answered(*data)


def bound(n: int, p: int, limit: int) -> int:
    """Node 0's processes' own shares, and every other node's."""
    return p * math.ceil(limit / (n * p)) + (n - 1) * math.ceil(limit / n)


@settings(max_examples=3, deadline=None)
@given(
    st.integers(min_value=2, max_value=4),
    st.integers(min_value=2, max_value=3),
    st.integers(min_value=1, max_value=40),
    SEEDS,
)
def test_no_minute_admits_more_than_the_bound(n: int, p: int, limit: int, seed: int) -> None:
    """Random arrivals, failed polls and exchanges: every 60 s interval admits at most
    the processes' shares and the other nodes', however the shares move."""
    mesh = ProcessesMesh(n, p, seed)
    subject = Subject("key", "k1", Limits(requests_per_minute=limit, burst=max(1, limit // 3)))
    for when, node in phases(mesh.rng, n, T0, 300):
        mesh.arrive(when, node, subject)
    mesh.run(T0 + 400)
    times = [t for t, _ in mesh.admitted]
    assert most_in_any_window(times, 60.0) <= bound(n, p, limit)
    assert most_in_any_window(times, 1.0) <= bound(n, p, max(1, limit // 3))


def busy_then_back(seed: int, busy: int, back: int, back_at: float) -> ProcessesMesh:
    """3 nodes, 2 processes on node 0, 18 a minute. Node `busy` gets two requests a
    second for 60 s; node `back` one a second for 20 s from `back_at` on, while the
    loan is in use, and again much later. No minute admits more than the bound, and
    `back` gets its share back by then."""
    mesh = ProcessesMesh(3, 2, seed=seed, fail=0.0)
    subject = Subject("key", "k1", Limits(requests_per_minute=18))
    for k in range(120):
        mesh.arrive(T0 + 5 + k / 2, busy, subject)
    for k in range(20):
        mesh.arrive(T0 + back_at + k, back, subject)
        mesh.arrive(T0 + 200 + k, back, subject)
    mesh.run(T0 + 230)
    assert most_in_any_window([t for t, _ in mesh.admitted], 60.0) <= bound(3, 2, 18)
    later = sum(1 for t, node in mesh.admitted if node == back and t > T0 + 200)
    assert later >= 6  # its share back (and more to borrow, with the other quiet)
    return mesh


def admitted_by(mesh: ProcessesMesh, node: int, before: float) -> int:
    return sum(1 for t, by in mesh.admitted if by == node and t < T0 + before)


def test_a_busy_node_of_several_processes_borrows_and_gives_back() -> None:
    """All traffic reaches node 0: it admits more than its processes' own 6, from its
    idle peers. Node 1's traffic comes while node 0 still uses the loan: node 1
    recalls, and gets its share back only once node 0's processes can give back their
    parts, so no minute admits more than 18."""
    mesh = busy_then_back(seed=3, busy=0, back=1, back_at=25)
    early = admitted_by(mesh, 0, 65)
    assert 6 < early <= 6 + 2 * 5, early  # its own, plus up to 5 from each peer
    assert mesh.control.parts == {}  # every part given back, the loans returned
    assert mesh.control.outer.stats()["borrowed"] == 0


def test_an_idle_node_of_several_processes_lends_what_its_processes_lent_it() -> None:
    """Node 1 is busy: node 0's processes each lend their share but one to the control
    process, which lends that on; node 0's traffic then comes back, and it gets its
    share back once node 1 can return it."""
    mesh = busy_then_back(seed=5, busy=1, back=0, back_at=35)
    # its own 6, 5 from node 2, and 2 x (3 - 1) that node 0's processes lent
    assert admitted_by(mesh, 1, 35) == 6 + 5 + 4
    assert mesh.control.lent_in == {}
    assert mesh.control.outer.stats()["lent"] == 0  # (it borrows from the idle ones now)


def test_a_process_answer_that_is_not_one_changes_nothing_it_should_not() -> None:
    control = NodeShares("n1", SPANS, {"p1": Path("p1")}, SocketClients(), lambda: 3, lambda: T0)
    odd = {"wants": {"a": 1}, "grants": [1], "returned": 5}
    for junk in (b"{", b"[]", json.dumps(odd).encode(), None):
        control.answered("p1", junk)
    assert (control.lent_in, control.limits, control.parts) == ({}, {}, {})
    assert control.sends(T0)["p1"]["part"]["grants"] == {"n1": []}
