"""Per-subject quotas for managed API keys, tenants and published models.

A request is checked against every subject that applies to it (its key, its
tenant, the published model it targets). It is admitted only if all of them
admit, and then it counts against all of them: a refusal never consumes
anything, so a tenant cannot be drained by requests its key refused.

The limits are control state (replicated by Raft, handed in with each request
as `Subject.limits`); the counters are not, for the same reason as the rate
limiter's (docs/rate-limits.md): a consensus write per request would put a
quorum round trip on the hot path. Counters live

* in Redis (`quotas_redis.QuotaRedis`, in the node's `HotStore`): one script
  call per admit and one per release, exact across the cluster; or
* locally, when no Redis is configured or it is unreachable: each of the N
  nodes owns ceil(limit / N) of every limit, and idle nodes lend their unused
  shares to busy ones over the peer poll (`shares.py`).

Windows slide (`windows.py`): a request counts for a whole window from when it
came, so no interval of a window's length admits more than the limit (Redis) or
limit + N - 1 (local), with no clock-aligned edge to burst across; the proof is
in docs/quotas.md. Each node also counts what it admits locally in every mode:
for `usage()`, and so that a switch to local mode starts from this node's real
counts rather than from zero.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.limits.hot_store import HotStore
from node.limits.quotas_redis import QuotaRedis
from node.limits.shares import Shares
from node.limits.windows import QUOTA_WINDOWS, SlidingCount

LEASE_TTL = 900.0  # seconds a lease holds a Redis concurrency slot if never released
CONCURRENCY_RETRY_AFTER = 1.0  # Retry-After hint for max_concurrent (ends are unknowable)
SWEEP_INTERVAL = 60.0  # seconds between drops of idle local counters

_CAMEL = {
    "requestsPerMinute": "requests_per_minute",
    "requestsPerHour": "requests_per_hour",
    "tokensPerHour": "tokens_per_hour",
    "burstLimit": "burst",
    "maxConcurrent": "max_concurrent",
}
_FIELDS = ("burst", "requests_per_minute", "requests_per_hour", "tokens_per_hour", "max_concurrent")
_NAMES = {**{f: f for f in _FIELDS}, **_CAMEL}
_REASONS = (None, *_FIELDS)  # index = refusal code of the admit script


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int | None = None
    requests_per_hour: int | None = None
    tokens_per_hour: int | None = None
    burst: int | None = None  # max requests in any 1-second window
    max_concurrent: int | None = None  # requests in flight at once

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None or (type(value) is int and value > 0):
                continue
            if type(value) is not int:  # bool is an int subclass, and not a limit
                raise ValueError(f"quota {name}: expected a positive integer, got {value!r}")
            raise ValueError(f"quota {name}: must be > 0, got {value}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Limits:
        """Build from snake_case or camelCase keys (None/null = no limit)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"quota limits: expected an object, got {type(d).__name__}")
        values: dict[str, Any] = {}
        for key, value in d.items():
            name = _NAMES.get(key)
            if name is None:
                raise ValueError(
                    f"quota limits: unknown field {key!r} (known: {', '.join(_NAMES)})"
                )
            if name in values and values[name] != value:
                raise ValueError(f"quota limits: {name} given twice with different values")
            values[name] = value
        return cls(**values)


# A client address on an open publication: limited like the publication, never booked as
# usage (the publication's own subject is), so no per-address record is replicated.
CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str  # "key" | "tenant" | "model" | CLIENT
    id: str
    limits: Limits

    def __post_init__(self) -> None:
        if not self.kind or ":" in self.kind or not self.id:
            raise ValueError(f"quota subject {self.kind!r}:{self.id!r}: bad kind or empty id")


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    retry_after: float  # seconds (0 if allowed)
    refused_by: str | None  # e.g. "key:k1 requests_per_minute"
    limit: int | None  # X-RateLimit-Limit: per-minute limit if set, else per-hour
    remaining: int | None  # X-RateLimit-Remaining after this request (>= 0)
    reset: float | None  # X-RateLimit-Reset: seconds until that window resets
    lease: Lease | None  # present when allowed; release it when the request ends

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-*` for the tightest window, or none when nothing limits."""
        if self.limit is None:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining or 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset or 0)),
        }


WINDOWS = QUOTA_WINDOWS  # every limit but `max_concurrent`, which is not windowed
SPANS = {field: span for field, (span, _) in WINDOWS.items()}
_REQUEST_WINDOWS = ("burst", "requests_per_minute", "requests_per_hour")


class _Counts:
    """This node's counts for one subject, plus its Redis keys and script args."""

    __slots__ = ("args", "hkey", "in_flight", "keys", "limits", "windows", "zkey")

    def __init__(self, kind: str, sid: str, prefix: str) -> None:
        self.hkey = f"{prefix}n:{kind}:{sid}"
        self.zkey = f"{prefix}c:{kind}:{sid}"
        self.limits: Limits | None = None
        self.args: tuple[str, ...] = ()
        self.windows = {field: SlidingCount(*shape) for field, shape in WINDOWS.items()}
        self.keys = {field: (kind, sid, field) for field in WINDOWS}  # keys of its shares
        self.in_flight = 0

    def count(self, now: float) -> None:
        """Count one admitted request in every request window."""
        for field in _REQUEST_WINDOWS:
            window = self.windows[field]
            window.advance(now)
            window.add()
        self.in_flight += 1

    def idle(self, now: float) -> bool:
        return not self.in_flight and not any(w.advance(now) for w in self.windows.values())


_Pairs = list[tuple[Subject, _Counts]]


class Lease:
    """One admitted request; `release` when it ends (idempotent)."""

    __slots__ = ("_engine", "_id", "_pairs", "_released", "_via_redis")

    def __init__(
        self, engine: QuotaEngine | None, lease_id: str, pairs: _Pairs, via_redis: bool
    ) -> None:
        self._engine, self._id, self._pairs, self._via_redis = engine, lease_id, pairs, via_redis
        self._released = engine is None

    async def release(self, tokens: int) -> None:
        """Free the request's concurrency slots and charge `tokens` to the hour's counters."""
        if self._released:
            return
        self._released = True
        engine = self._engine
        assert engine is not None
        tokens, now = max(0, int(tokens)), engine._clock()
        for _, c in self._pairs:  # local first: right even if the Redis call is cancelled
            c.in_flight = max(0, c.in_flight - 1)
            window = c.windows["tokens_per_hour"]
            window.advance(now)
            window.add(tokens)
        if (redis := engine._redis) is None:
            return
        # limits as of admission: the in-flight sets this lease joined, the token counters
        zkeys = [c.zkey for s, c in self._pairs if s.limits.max_concurrent and self._via_redis]
        tkeys = [c.hkey for s, c in self._pairs if s.limits.tokens_per_hour and tokens]
        if zkeys or tkeys:
            args = (self._id, str(len(zkeys)), str(tokens))
            await redis.release([*zkeys, *tkeys], args, keep=self._via_redis)


class QuotaEngine:
    def __init__(
        self,
        node_name: str,
        store: HotStore | None,  # None: counters are always local
        nodes: Callable[[], int],  # the mesh's size: each node owns ceil(limit / nodes)
        clock: Callable[[], float] = time.monotonic,  # windows slide: no wall clock needed
        key_prefix: str = "meshgate:q:",
        lease_ttl: float = LEASE_TTL,
        shares: Shares | None = None,  # how it lends and borrows without Redis (shares.py)
    ) -> None:
        self.node_name = node_name
        self._nodes, self._clock, self._prefix = nodes, clock, key_prefix
        self._lease_ttl = repr(float(lease_ttl))
        self.store = store if store is not None else HotStore(None)
        self._redis = QuotaRedis(self.store) if self.store.configured else None
        self.shares = shares if shares is not None else Shares(node_name, SPANS)
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._lease_ids = itertools.count(1)
        self._nonce = os.urandom(4).hex()  # a restarted node never reuses a lease id
        self._swept = clock()

    async def admit(self, subjects: Sequence[Subject]) -> QuotaDecision:
        """Admit if every subject admits; then count the request against all of them."""
        now = self._clock()
        if now - self._swept >= SWEEP_INTERVAL:
            self._sweep(now)
        pairs = self._pairs(subjects)
        if not pairs:
            return _UNLIMITED
        redis = self._redis
        if redis is None or not self.store.healthy:
            return self._admit_local(pairs, "", False, now)
        lease_id = f"{self.node_name}:{self._nonce}:{next(self._lease_ids)}"
        keys = [k for _, c in pairs for k in (c.hkey, c.zkey)]
        args = [a for _, c in pairs for a in c.args]
        reply = await redis.admit(keys, [lease_id, self._lease_ttl, *args])
        if reply is None:  # the failed call may still have taken slots: release in Redis too
            return self._admit_local(pairs, lease_id, True, self._clock())
        return self._settle_redis(pairs, lease_id, reply, now)

    def _pairs(self, subjects: Sequence[Subject]) -> _Pairs:
        pairs: _Pairs = []
        seen: list[_Counts] = []
        for s in subjects:
            lim = s.limits
            if not (
                lim.requests_per_minute
                or lim.requests_per_hour
                or lim.burst
                or lim.max_concurrent
                or lim.tokens_per_hour
            ):
                continue
            c = self._counts.get(key := (s.kind, s.id))
            if c is None:
                c = self._counts[key] = _Counts(s.kind, s.id, self._prefix)
            elif c in seen:
                continue  # the same subject twice counts once
            if c.limits is not lim and c.limits != lim:
                c.limits, c.args = lim, tuple(str(getattr(lim, f) or 0) for f in _FIELDS)
            pairs.append((s, c))
            seen.append(c)
        return pairs

    def _admit_local(
        self, pairs: _Pairs, lease_id: str, via_redis: bool, now: float
    ) -> QuotaDecision:
        """Each windowed limit: admit while this node's count is below what it holds."""
        n, shares = self._mesh(), self.shares
        wait, refused_by, head = 0.0, None, None
        for s, c in pairs:
            lim = s.limits
            headline = "requests_per_minute" if lim.requests_per_minute else "requests_per_hour"
            for field in WINDOWS:
                limit = getattr(lim, field)
                if not limit:
                    continue
                window, key = c.windows[field], c.keys[field]
                used = window.advance(now)
                held = shares.held(key, -(-limit // n), now)
                if used >= held and (w := window.wait(now, held)) >= wait:
                    wait, refused_by = w, f"{s.kind}:{s.id} {field}"
                # demand, admitted or not: what borrowing is for
                shares.note(key, limit, used + (field != "tokens_per_hour"), held, now)
                if field == headline:
                    reset = window.reset(now) if used else window.span
                    head = _tighter(head, limit, held - used, reset)
            share = -(-lim.max_concurrent // n) if lim.max_concurrent else 0
            if share and c.in_flight >= share and wait < CONCURRENCY_RETRY_AFTER:
                wait, refused_by = CONCURRENCY_RETRY_AFTER, f"{s.kind}:{s.id} max_concurrent"
        if refused_by is not None:
            return _decision(None, wait, refused_by, head)
        for _, c in pairs:
            c.count(now)
        return _decision(Lease(self, lease_id, pairs, via_redis), 0.0, None, head)

    def _mesh(self) -> int:
        return max(1, int(self._nodes()))

    def _settle_redis(
        self, pairs: _Pairs, lease_id: str, reply: list[Any], local_now: float
    ) -> QuotaDecision:
        wait, refused_by, head = 0.0, None, None
        for i, (s, _) in enumerate(pairs):
            count, reset, code, w = reply[1 + 4 * i : 5 + 4 * i]
            if int(code) and (refused_by is None or float(w) > wait):
                wait, refused_by = float(w), f"{s.kind}:{s.id} {_REASONS[int(code)]}"
            if limit := s.limits.requests_per_minute or s.limits.requests_per_hour:
                head = _tighter(head, limit, limit - int(count), float(reset))
        if int(reply[0]) != 1:
            return _decision(None, wait, refused_by, head)
        for _, c in pairs:  # this node's own counts: usage() and a later switch to local
            c.count(local_now)
        return _decision(Lease(self, lease_id, pairs, True), 0.0, None, head)

    def _sweep(self, now: float) -> None:
        """Forget subjects with nothing in flight and nothing counted in any window."""
        self._swept = now
        for key in [k for k, c in self._counts.items() if c.idle(now)]:
            del self._counts[key]

    # -- sharing without Redis (node/limits/shares.py) ----------------------------------

    def share_report(self) -> dict[str, Any]:
        """This node's part of `/ha/local`, read by its peers' `exchange`."""
        return self.shares.report(self._clock())

    def exchange(self, peers: Mapping[str, tuple[float, Mapping[str, Any]] | None]) -> None:
        """One round of lending and borrowing, given every peer's last report part (None: it
        did not answer) and when, on this engine's clock, the poll that fetched it was sent."""
        self.shares.exchange(peers, self._count_of, self._base_of, self._clock())

    def _count_of(self, key: tuple[str, str, str], now: float) -> int:
        c = self._counts.get((key[0], key[1]))
        return c.windows[key[2]].advance(now) if c is not None else 0

    def _base_of(self, key: tuple[str, str, str], limit: int | None) -> int:
        if limit is None:
            c = self._counts.get((key[0], key[1]))
            limit = getattr(c.limits, key[2]) if c is not None and c.limits else None
        return -(-limit // self._mesh()) if limit else 0

    @property
    def backend(self) -> str:
        return self.store.backend

    def usage(self, subject_kind: str, subject_id: str) -> dict[str, int]:
        """This node's counts for a subject over the last second, minute and hour."""
        c = self._counts.get((subject_kind, subject_id))
        if c is None:
            c = _Counts(subject_kind, subject_id, "")
        now, w = self._clock(), c.windows
        return {
            "requests_second": w["burst"].advance(now),
            "requests_minute": w["requests_per_minute"].advance(now),
            "requests_hour": w["requests_per_hour"].advance(now),
            "tokens_hour": w["tokens_per_hour"].advance(now),
            "in_flight": c.in_flight,
        }


_Head = tuple[int, int, float]  # limit, remaining before this request, seconds to reset


def _tighter(head: _Head | None, limit: int, left: int, reset: float) -> _Head:
    """The window with the fewest requests left (ties: the smaller limit)."""
    if head is None or left < head[1] or (left == head[1] and limit < head[0]):
        return (limit, left, reset)
    return head


def _decision(
    lease: Lease | None, wait: float, refused_by: str | None, head: _Head | None
) -> QuotaDecision:
    if head is None:
        return QuotaDecision(lease is not None, wait, refused_by, None, None, None, lease)
    limit, left, reset = head
    left -= lease is not None  # remaining after this request
    return QuotaDecision(lease is not None, wait, refused_by, limit, max(0, left), reset, lease)


_UNLIMITED = QuotaDecision(True, 0.0, None, None, None, None, Lease(None, "", [], False))
