"""Without Redis: each node's share of a quota, and the unused shares idle nodes lend.

Every node of an N-node mesh owns `ceil(L / N)` of a windowed limit `L` (its
*base*), so the shares add up to at most `L + N - 1`. A node *holds* its base,
minus what it has lent or is waiting to get back, plus what it has borrowed;
it admits a request only while its own count over the window is below what it
holds. The protocol keeps one invariant (docs/quotas.md has the proof):

    a node raises what it holds only after another node has provably lowered
    it by as much, and lowers it voluntarily only to at least its own count.

It rides on the peer poll (every node reads every peer's `/ha/local` once a
second; `report()` is this node's part of it, `exchange()` reads the peers'):

* **want**: a node that has used half of what it holds on a limit says so.
* **grant**: an idle node (a lender) lowers what it holds to `max(1, count)`
  (it keeps one request in reserve) and then offers the difference to the
  nodes that want it. A borrower uses a grant only for `LEASE` seconds after it
  *sent* the poll that saw it, renewed by every poll that sees it again.
* **recall and return**: a lender that wants its share back (its own traffic is
  back, or the borrower no longer wants) marks the grant recalled; the borrower
  returns it once its own count allows it to hold that much less: it lowers
  first, then says so, and only then does the lender raise again.
* **withdraw**: a lender that cannot reach the borrower stops offering the grant
  and keeps it out of what it holds for `LEASE + window + MARGIN` seconds: by then
  the borrower's lease has ended and a whole window has passed since.
* **shrink**: a lowered limit. A borrower counts a grant for at most what a lender
  could lend under the limit it decides with now (`base - 1`); a lender whose grants
  no longer fit in that, for the lowest limit it knows of, withdraws the excess.

A node wants, lends on and reads from each peer at most `MAX_KEYS` limits, so a round
is O(keys) per peer; `client` subjects (anyone can make them) take no part.

A node of several processes (node/plane/node_shares.py) runs the protocol twice: its
control process borrows and lends for the node with its peers (it admits nothing
itself: it lends only what its processes lent it, and gives a loan back once its
processes have given back every part of it: `gives_back`), and its data-plane
processes borrow from it and lend to it alone (`capped=False`: the control process
has capped each peer's grant already; `shrinks=False`: a grant to it comes back only
when it gives it back, since it may have lent it on).

Times are this node's monotonic clock; only durations cross between nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

LEASE = 3.0  # seconds a grant stays usable after the poll that saw it was sent
MARGIN = 1.0  # seconds of slack for clocks that run at slightly different rates
# At most this many keys a node wants, lends for, or reads from one peer's list (wants,
# grants, returns): one round costs O(MAX_KEYS) per peer whatever the peers send. Beyond
# it a key simply gets no loan: the bound still holds, only borrowing is lost.
MAX_KEYS = 1000
PRUNE_EVERY = 1.0  # seconds between two sweeps of lapsed wants by `note`
# Subjects that never lend or borrow: one `client` subject per caller address of an open
# publication, which anyone can create. Each node holds its own share of their limits.
UNSHARED = frozenset({"client"})

Key = tuple[str, str, str]  # subject kind, subject id, limit field
PeerPart = tuple[float, Mapping[str, Any]]  # when the poll was sent, the peer's report part


@dataclass(slots=True)
class _Grant:
    gid: int
    amount: int
    recall: bool = False


@dataclass(slots=True)
class _Loan:
    gid: int
    amount: int
    until: float  # the lease: usable while now < until
    recall: bool = False  # the lender wants it back


@dataclass(frozen=True, slots=True)
class Loan:
    """A loan as a node of several processes passes it on (node/plane/node_shares.py)."""

    amount: int
    until: float
    recall: bool


class Shares:
    """This node's side of the protocol: what it holds, wants, lends and borrows."""

    def __init__(
        self,
        name: str,
        spans: Mapping[str, float],
        *,
        lends: bool = True,  # False: borrows only
        capped: bool = True,  # False: a grant counts whole (a data-plane process's)
        shrinks: bool = True,  # False: lent until given back (a data-plane process's)
        gives_back: Callable[[Key], bool] | None = None,  # else: its count fits without it
    ) -> None:
        self.name = name
        self.spans = spans  # limit field -> window seconds
        self.lends = lends
        self.capped = capped
        self.shrinks = shrinks
        self.gives_back = gives_back
        self.ready = False  # heard from (or about) every peer once: lends and borrows only then
        self._lent: dict[Key, dict[str, _Grant]] = {}  # key -> borrower -> grant
        self._pending: dict[Key, tuple[int, float]] = {}  # withdrawn: amount, out until
        self._loans: dict[Key, dict[str, _Loan]] = {}  # key -> lender -> loan
        self._returned: dict[str, dict[Key, int]] = {}  # lender -> key -> grant id given back
        self._wants: dict[Key, tuple[int, float]] = {}  # key -> limit, wanted until
        self._pruned = float("-inf")  # when `note` last dropped lapsed wants
        self._ids = itertools.count(1)

    def held(self, key: Key, base: int, now: float) -> int:
        """What this node may admit against on `key`: its base, less lent, plus borrowed."""
        if not (self._lent or self._pending or self._loans):
            return base  # nothing lent or borrowed anywhere: the common case, kept fast
        own = base
        if (lent := self._lent.get(key)) is not None:
            own -= sum(g.amount for g in lent.values())
        if (pending := self._pending.get(key)) is not None:
            if pending[1] > now:
                own -= pending[0]
            else:
                del self._pending[key]
        held = max(0, own)
        if (loans := self._loans.get(key)) is not None:
            # a lender lends at most its base less one in reserve: under the limit this node
            # knows now (it may have been lowered since the grant), and whatever a peer sends
            most = max(0, base - 1)
            held += sum(
                min(x.amount, most) if self.capped else x.amount
                for x in loans.values()
                if x.until > now
            )
        return held

    def note(self, key: Key, limit: int, used: int, held: int, now: float) -> None:
        """`used` of `held` is taken (this request included): at half or more, want more.
        A key already wanted takes the limit it is decided with now, so lenders learn a
        lowered limit; at most `MAX_KEYS` keys are wanted at once."""
        if now - self._pruned >= PRUNE_EVERY:
            self._prune(now)  # amortised: at most once a second, O(MAX_KEYS)
        wanted = self._wants.get(key)
        if 2 * used >= held:
            if wanted is not None or (len(self._wants) < MAX_KEYS and key[0] not in UNSHARED):
                self._wants[key] = (limit, now + self.spans[key[2]])
        elif wanted is not None and wanted[0] != limit:
            self._wants[key] = (limit, wanted[1])

    def want(self, key: Key, limit: int, until: float) -> None:
        """Want `key` until `until` (a control process: for as long as its data-plane
        processes, which noted it, say they want it)."""
        if key in self._wants or (len(self._wants) < MAX_KEYS and key[0] not in UNSHARED):
            self._wants[key] = (limit, until)

    def lends_out(self, key: Key) -> bool:
        """Has this node lent `key` out, or kept a withdrawn grant out still?"""
        return bool(self._lent.get(key)) or key in self._pending

    def wants(self, key: Key) -> bool:
        return key in self._wants

    def loans(self, now: float) -> dict[Key, list[Loan]]:
        """Every loan in use now, by key."""
        return {
            key: [Loan(x.amount, x.until, x.recall) for x in loans.values() if x.until > now]
            for key, loans in self._loans.items()
            if any(x.until > now for x in loans.values())
        }

    def _prune(self, now: float) -> None:
        self._pruned = now
        for key in [k for k, (_, until) in self._wants.items() if until <= now]:
            del self._wants[key]

    def report(self, now: float) -> dict[str, Any]:
        """This node's part of `/ha/local`, read by every peer's `exchange`."""
        self._prune(now)
        return {
            "ready": self.ready,
            "wants": [[*key, limit] for key, (limit, _) in self._wants.items()],
            "grants": _by_peer(
                (to, [*key, g.gid, g.amount, g.recall])
                for key, lent in self._lent.items()
                for to, g in lent.items()
            ),
            "returned": _by_peer(
                (lender, [*key, gid])
                for lender, keys in self._returned.items()
                for key, gid in keys.items()
            ),
        }

    def exchange(
        self,
        peers: Mapping[str, PeerPart | None],  # every other member: None if it did not answer
        count: Callable[[Key, float], int],  # this node's count over the key's window now
        base: Callable[[Key, int | None], int],  # this node's base (None: the limit it knows)
        now: float,
    ) -> None:
        """One round of the protocol after a poll of every peer."""
        self._prune(now)
        fresh = {name: part for name, part in peers.items() if part is not None}
        for lender, (sent_at, part) in fresh.items():
            self._borrow(lender, sent_at, part, count, lambda k: base(k, None), now)
        self._settle_grants(fresh, base, now)
        if self.ready and self.lends:
            self._lend(fresh, count, base, now)
        self.ready = True
        self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop lapsed loans and pending returns, so idle keys leave nothing behind."""
        for key, loans in list(self._loans.items()):
            for lender in [name for name, loan in loans.items() if loan.until <= now]:
                del loans[lender]
            if not loans:
                del self._loans[key]
        for key in [k for k, (_, until) in self._pending.items() if until <= now]:
            del self._pending[key]

    # -- borrowing ----------------------------------------------------------------------

    def _borrow(
        self,
        lender: str,
        sent_at: float,
        part: Mapping[str, Any],
        count: Callable[[Key, float], int],
        base: Callable[[Key], int],
        now: float,
    ) -> None:
        offered: dict[Key, tuple[int, int, bool]] = {}
        for kind, sid, field, gid, amount, recall in _rows(part, "grants", self.name, 6):
            ok = _strs(kind, sid, field) and _ints(gid, amount) and amount > 0
            if ok and kind not in UNSHARED:
                offered[(kind, sid, field)] = (gid, amount, bool(recall))
        returned = self._returned.setdefault(lender, {})
        for key in [k for k in returned if k not in offered or offered[k][0] != returned[k]]:
            del returned[key]  # the lender has taken it back: forget it
        for key, loans in self._loans.items():
            if lender in loans and key not in offered:
                del loans[lender]  # withdrawn (the lender keeps it out for a whole window)
        for key, (gid, amount, recall) in offered.items():
            if returned.get(key) == gid or key[2] not in self.spans:
                continue
            loans = self._loans.setdefault(key, {})
            if recall:
                loans.pop(lender, None)
                # give it back only if this node's count fits in what it holds without it
                if self._fits(key, count, base, now):
                    returned[key] = gid
                    continue
            loans[lender] = _Loan(gid, amount, sent_at + LEASE, bool(recall))
        if not returned:
            del self._returned[lender]

    def _fits(
        self, key: Key, count: Callable[[Key, float], int], base: Callable[[Key], int], now: float
    ) -> bool:
        if self.gives_back is not None:
            return self.gives_back(key)
        return count(key, now) <= self.held(key, base(key), now)

    # -- lending ------------------------------------------------------------------------

    def _settle_grants(
        self,
        fresh: Mapping[str, PeerPart],
        base: Callable[[Key, int | None], int],
        now: float,
    ) -> None:
        # each borrower's rows read once per round, so that a round is O(keys), not O(keys²)
        returned: dict[str, set[tuple[str, str, str, int]]] = {}
        wants: dict[str, dict[Key, int]] = {}
        for name in {to for lent in self._lent.values() for to in lent}:
            if (part := fresh.get(name)) is not None:
                returned[name] = {
                    (k, s, f, g)
                    for k, s, f, g in _rows(part[1], "returned", self.name, 4)
                    if _strs(k, s, f) and _ints(g)
                }
                wants[name] = wanted(part[1])
        for key, lent in list(self._lent.items()):
            for to, g in list(lent.items()):
                if to not in wants:  # unreachable: stop offering, keep it out a whole window
                    del lent[to]
                    self._withdraw(key, g.amount, now)
                elif (*key, g.gid) in returned[to]:
                    del lent[to]  # the borrower lowered first: it is ours again at once
                elif key in self._wants or key not in wants[to]:
                    g.recall = True
            if lent and self.shrinks:
                self._shrink(key, lent, [wants[to].get(key) for to in lent], base, now)
            if not lent:
                del self._lent[key]

    def _shrink(
        self,
        key: Key,
        lent: dict[str, _Grant],
        limits: list[int | None],  # the limit each borrower decides with, if it says
        base: Callable[[Key, int | None], int],
        now: float,
    ) -> None:
        """A lowered limit (or a larger mesh): what is lent must fit in the base under the
        lowest limit this node knows of, less one in reserve, as when it lent. The excess
        is withdrawn: out of the grants at once, kept out of what it holds a whole window."""
        bases = [b for x in (None, *limits) if (b := base(key, x)) > 0]  # 0: not known
        if not bases:
            return
        most = min(bases) - 1
        if sum(g.amount for g in lent.values()) <= most:
            return
        for i, g in enumerate(sorted(lent.values(), key=lambda g: g.gid)):
            cut = most // len(lent) + (i < most % len(lent))  # split evenly, as when lent
            if g.amount > cut:
                self._withdraw(key, g.amount - cut, now)
                g.amount = cut
        for to in [to for to, g in lent.items() if not g.amount]:
            del lent[to]

    def _withdraw(self, key: Key, amount: int, now: float) -> None:
        out, _ = self._pending.get(key, (0, 0.0))
        self._pending[key] = (out + amount, now + LEASE + self.spans[key[2]] + MARGIN)

    def _lend(
        self,
        fresh: Mapping[str, PeerPart],
        count: Callable[[Key, float], int],
        base: Callable[[Key, int | None], int],
        now: float,
    ) -> None:
        wanting: dict[Key, tuple[int, list[str]]] = {}
        for name, (_, part) in sorted(fresh.items()):
            if not part.get("ready"):
                continue
            for key, limit in wanted(part).items():
                if key[2] in self.spans and key[0] not in UNSHARED:
                    wanting.setdefault(key, (limit, []))[1].append(name)
        for key, (limit, borrowers) in wanting.items():
            if len(self._lent) >= MAX_KEYS:
                break  # lends for at most MAX_KEYS keys at once
            if key in self._lent or key in self._pending or key in self._wants:
                continue
            if self._loans.get(key):  # lend only its own share: a loan may vanish any time
                continue
            held = self.held(key, base(key, limit), now)
            spare = held - max(1, count(key, now))  # keep one in reserve, never below the count
            if spare < 1:
                continue
            lent = self._lent[key] = {}
            for i, to in enumerate(borrowers):  # split evenly, the remainder to the first
                amount = spare // len(borrowers) + (i < spare % len(borrowers))
                if amount:
                    lent[to] = _Grant(next(self._ids), amount)

    def stats(self) -> dict[str, Any]:
        return {
            "lent": sum(g.amount for lent in self._lent.values() for g in lent.values()),
            "borrowed": sum(x.amount for loans in self._loans.values() for x in loans.values()),
            "pending": sum(p[0] for p in self._pending.values()),
        }


def _by_peer(rows: Any) -> dict[str, list[list[Any]]]:
    out: dict[str, list[list[Any]]] = {}
    for peer, row in rows:
        out.setdefault(peer, []).append(row)
    return out


def _rows(part: Mapping[str, Any], field: str, peer: str | None, width: int) -> list[Any]:
    """The well-formed rows of a peer's report part (a peer of an earlier version has none)."""
    rows = part.get(field) or ([] if peer is None else {})
    if peer is not None:
        rows = rows.get(peer, []) if isinstance(rows, dict) else []
    if not isinstance(rows, list):
        return []
    return [r for r in rows[:MAX_KEYS] if isinstance(r, list) and len(r) == width]


def wanted(part: Mapping[str, Any]) -> dict[Key, int]:
    """A peer's well-formed wants: key -> the limit it decides with."""
    return {
        (kind, sid, field): limit
        for kind, sid, field, limit in _rows(part, "wants", None, 4)
        if _strs(kind, sid, field) and _ints(limit) and limit > 0
    }


def _strs(*values: Any) -> bool:
    return all(type(v) is str for v in values)


def _ints(*values: Any) -> bool:
    return all(type(v) is int for v in values)  # bool is not a count
