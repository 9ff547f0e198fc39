"""Quota shares without Redis for a node of several processes: its control process
borrows and lends for the node over the peer poll, and lends on to (and borrows from)
its data-plane processes.

Each data-plane process admits against its own share of the node's, `ceil(L / (N x P))`,
and notes what it wants, as any node does (node/limits/shares.py). Every TICK_SECS the
control process sends each one, over its `process-pN.sock` (`POST /shares`), its part of
the protocol with that process alone, and reads back the process's. The control process:

* **wants** for the node what any of its processes wants, so its peers lend to it;
* **passes a loan on in parts**: what it borrowed on a limit (each peer's grant counted
  for at most `ceil(L / N) - 1`, as a node does) is split among the processes that want
  it. A part's lease ends no later than the earliest loan it comes from (one monotonic
  clock for every process of a host), so a process stops using it before the node must.
  A part stays that process's until it gives it back, or shrinks with the loans: never
  moved from one process to another, which could count a unit twice in a window;
* **gives a loan back** only once every process has given back its part of that limit
  (each lowers first, when its own count fits without it). A process that does not
  answer keeps its parts, for the node's count, until their lease and a whole window
  have passed;
* **lends only what its processes lent it**: it asks them for the limits its peers want
  (and the node does not); each idle process lowers first and grants the node its share
  but one, as a lender does, and the node lends that on. A process's grant comes back
  to it only when the node gives it back: once the process recalls it (its own traffic
  is back, or no peer wants it) and the node has nothing lent, or kept out, on that limit.

So every unit one holder uses of another's share is one the other lowered first, counted
once: the bound of docs/quotas.md holds, with the node's processes' own shares as they
were (`P x ceil(L / (N x P))` for the node).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from node.limits.quotas import QuotaEngine
from node.limits.shares import LEASE, MARGIN, MAX_KEYS, Key, Loan, Shares, wanted
from node.plane.siblings import SHARES, SocketClients
from node.service import Periodic

TICK_SECS: Final = 1.0  # between two exchanges with the data-plane processes
ANSWER_SECS: Final = 1.0  # each process's answer
# A process's want lasts until its next answers (each process's wants last a window).
WANT_SECS: Final = 3 * TICK_SECS
LENDER: Final = "control"  # the name a data-plane process knows its control process by


@dataclass(slots=True)
class _Part:
    gid: int
    amount: int
    until: float  # the lease of the last part sent
    recall: bool = False


@dataclass(slots=True)
class _Grant:
    gid: int
    amount: int
    recall: bool  # the process wants it back


class NodeShares:
    """The control process's side (see the module's docstring): `outer` takes part in
    the peer poll; `nodes` is the mesh's size."""

    def __init__(
        self,
        name: str,
        spans: Mapping[str, float],
        sockets: Mapping[str, Path],
        clients: SocketClients,
        nodes: Callable[[], int],
        clock: Callable[[], float],
    ) -> None:
        self.outer = Shares(name, spans, gives_back=self.gives_back)
        self.spans = spans
        self.sockets = dict(sockets)
        self.clients = clients
        self.nodes = nodes
        self.clock = clock
        self.limits: dict[Key, int] = {}  # the limit each wanted key is decided with
        self.wanting: dict[str, set[Key]] = {}  # by process, as of its last answer
        self.parts: dict[Key, dict[str, _Part]] = {}  # key -> process -> its part
        self.held_out: dict[Key, list[tuple[int, float]]] = {}  # parts of the silent: until
        self.peer_wants: dict[Key, int] = {}  # what the peers want, the highest limit said
        self.lent_in: dict[Key, dict[str, _Grant]] = {}  # what each process lent the node
        self.giving_back: dict[str, dict[Key, int]] = {}  # process -> key -> grant id
        self._ids = itertools.count(1)
        self._ticking = Periodic("node-shares", self.tick, TICK_SECS, immediately=True)

    def start(self) -> None:
        self._ticking.start()

    async def stop(self) -> None:
        await self._ticking.stop()

    # -- with the peers -----------------------------------------------------------------

    def exchange(self, peers: Mapping[str, tuple[float, Mapping[str, Any]] | None]) -> None:
        """One round of the peer protocol, for the node."""
        self.peer_wants = {}
        for _, part in (p for p in peers.values() if p is not None):
            if part.get("ready"):
                for key, limit in wanted(part).items():
                    if key[2] in self.spans:
                        self.peer_wants[key] = max(limit, self.peer_wants.get(key, 0))
        self.outer.exchange(peers, self._count, self._base, self.clock())

    def _count(self, key: Key, _now: float) -> int:
        """The node's count as its lending sees it: all but what its processes lent it,
        so that it lends no more than they did (its base is at most that of the highest
        limit a peer said)."""
        return max(0, self._base(key, self.peer_wants.get(key)) - self.lendable(key))

    def lendable(self, key: Key) -> int:
        """What the processes have lent the node on `key`, and not asked back."""
        return sum(
            g.amount
            for name, g in self.lent_in.get(key, {}).items()
            if not g.recall and self.giving_back.get(name, {}).get(key) != g.gid
        )

    def _base(self, key: Key, limit: int | None) -> int:
        limit = limit or self.limits.get(key)
        return math.ceil(limit / max(1, self.nodes())) if limit else 0

    def gives_back(self, key: Key) -> bool:
        """May the node give back a loan on `key`: no process holds a part of it."""
        return not self.parts.get(key) and not self.held_out.get(key)

    # -- with the processes -------------------------------------------------------------

    async def tick(self) -> None:
        """Hand out the node's loans in parts, send each process its own, and read back
        what each wants and gave back."""
        sends = self.sends(self.clock())
        answers = await asyncio.gather(
            *(
                self.clients.post(self.sockets[name], SHARES, orjson.dumps(send), ANSWER_SECS)
                for name, send in sends.items()
            )
        )
        for name, answer in zip(sends, answers, strict=True):
            self.answered(name, answer)

    def sends(self, now: float) -> dict[str, dict[str, Any]]:
        """What each process is sent this tick: its parts, fitted to the loans now; the
        limits the peers want it to lend; the grants the node gives back."""
        self._forget_held_out(now)
        for key, grants in self.lent_in.items():
            if not self.outer.lends_out(key):  # not lent on (any more): theirs again
                for name, g in grants.items():
                    if g.recall:
                        self.giving_back.setdefault(name, {})[key] = g.gid
        loans = self.outer.loans(now)
        for key in {*loans, *self.parts}:  # a key whose loans all ended: its parts end too
            self._share_out(key, loans.get(key, []), now)
        for key in [k for k, parts in self.parts.items() if not parts]:
            del self.parts[key]
        wanted_now = set().union(*self.wanting.values(), self.parts, loans)
        for key in [k for k in self.limits if k not in wanted_now]:
            del self.limits[key]  # nothing of it left: forget it, as its processes did
        return {name: self._part_for(name, now) for name in self.sockets}

    def answered(self, name: str, answer: bytes | None) -> None:
        """Process `name`'s answer to what it was sent (None: no answer in time)."""
        report = _report(answer)
        if report is None:
            self._hold_out(name)
        else:
            self._read(name, report)

    def _share_out(self, key: Key, loans: list[Loan], now: float) -> None:
        """Fit the parts of `key` to the node's loans on it: shrink them if the loans
        shrank; split what is new among the processes that want it (not while a lender
        wants its grant back); mark them all recalled while one does."""
        most = self._base(key, None) - 1  # what one lender can lend (a forged grant: no more)
        total = sum(min(loan.amount, max(0, most)) for loan in loans)
        until = min((loan.until for loan in loans), default=now)
        recall = any(loan.recall for loan in loans)
        parts = self.parts.setdefault(key, {})
        out = sum(amount for amount, _ in self.held_out.get(key, ()))
        excess = sum(p.amount for p in parts.values()) + out - total
        for part in sorted(parts.values(), key=lambda p: -p.amount):
            if excess <= 0:
                break
            cut = min(part.amount, excess)  # the loans are gone: so are these units
            part.amount -= cut
            excess -= cut
        wanting = sorted(name for name, keys in self.wanting.items() if key in keys)
        if excess < 0 and wanting and not recall:
            spare = -excess
            for i, name in enumerate(wanting):  # split evenly, the remainder to the first
                amount = spare // len(wanting) + (i < spare % len(wanting))
                if (given := parts.get(name)) is None:
                    parts[name] = _Part(next(self._ids), amount, until)
                else:
                    given.amount += amount
        for name in [n for n, p in parts.items() if not p.amount]:
            del parts[name]
        for part in parts.values():
            part.until = until
            part.recall = recall

    def _part_for(self, name: str, now: float) -> dict[str, Any]:
        """What process `name` is sent: its parts as grants of one lender, and when they
        were 'sent', so that its lease ends with the earliest loan."""
        rows, until = [], now + LEASE
        for key, parts in self.parts.items():
            if (part := parts.get(name)) is not None:
                rows.append([*key, part.gid, part.amount, part.recall])
                until = min(until, part.until)
        node = self.outer.name
        wants = [[*k, limit] for k, limit in self.peer_wants.items() if not self.outer.wants(k)]
        back = [[*k, gid] for k, gid in self.giving_back.get(name, {}).items()]
        sent = {"ready": True, "wants": wants, "grants": {node: rows}, "returned": {node: back}}
        return {"sent_at": until - LEASE, "part": sent}

    def _read(self, name: str, report: Mapping[str, Any]) -> None:
        """A process's answer: what it wants (with the limit), and the parts it gave back."""
        wants = set()
        for row in _list(report.get("wants"))[:MAX_KEYS]:
            if _row(row, 4) and type(row[3]) is int and row[3] > 0:
                key: Key = (row[0], row[1], row[2])
                if key[2] in self.spans:
                    wants.add(key)
                    self.limits[key] = row[3]
                    self.outer.want(key, row[3], self.clock() + WANT_SECS)
        self.wanting[name] = wants
        returned = report.get("returned", {})
        for row in _list(returned.get(LENDER) if isinstance(returned, dict) else None)[:MAX_KEYS]:
            if _row(row, 4):
                parts = self.parts.get((row[0], row[1], row[2]), {})
                if (part := parts.get(name)) is not None and part.gid == row[3]:
                    del parts[name]  # it lowered first: the node's again
        self._read_grants(name, report.get("grants", {}))

    def _read_grants(self, name: str, grants: Any) -> None:
        """What process `name` has lent the node now (it lowered first); a grant it no
        longer lists was given back: forget that it was."""
        for lent in self.lent_in.values():
            lent.pop(name, None)
        for row in _list(grants.get(LENDER) if isinstance(grants, dict) else None)[:MAX_KEYS]:
            if _row(row, 6) and type(row[4]) is int and row[4] > 0:
                key = (row[0], row[1], row[2])
                self.lent_in.setdefault(key, {})[name] = _Grant(row[3], row[4], bool(row[5]))
        for key in [k for k, lent in self.lent_in.items() if not lent]:
            del self.lent_in[key]
        back = self.giving_back.get(name, {})
        for key in [k for k, gid in back.items() if self._lent_by(name, k) != gid]:
            del back[key]

    def _lent_by(self, name: str, key: Key) -> int | None:
        grant = self.lent_in.get(key, {}).get(name)
        return grant.gid if grant is not None else None

    def _hold_out(self, name: str) -> None:
        """A process that did not answer may use its parts until their lease ends: keep
        them out of what the node gives back until a window after that."""
        self.wanting.pop(name, None)
        for key, parts in self.parts.items():
            if (part := parts.pop(name, None)) is not None:
                out = part.until + self.spans[key[2]] + MARGIN
                self.held_out.setdefault(key, []).append((part.amount, out))

    def _forget_held_out(self, now: float) -> None:
        for key, held in list(self.held_out.items()):
            held[:] = [(amount, until) for amount, until in held if until > now]
            if not held:
                del self.held_out[key]


def borrow_from_control(
    quotas: QuotaEngine, sent_at: float, part: Mapping[str, Any]
) -> dict[str, Any]:
    """A data-plane process's side: take its parts (as grants of one lender, LENDER),
    give back the recalled ones its count allows, and say what it wants."""
    quotas.exchange({LENDER: (sent_at, part)})
    return quotas.share_report()


def _report(answer: bytes | None) -> dict[str, Any] | None:
    try:
        report = orjson.loads(answer) if answer is not None else None
    except orjson.JSONDecodeError:
        return None
    return report if isinstance(report, dict) else None


def _list(rows: Any) -> list[Any]:
    return rows if isinstance(rows, list) else []


def _row(row: Any, width: int) -> bool:
    return (
        isinstance(row, list)
        and len(row) == width
        and all(type(v) is str for v in row[:3])
        and type(row[3]) is int
    )
