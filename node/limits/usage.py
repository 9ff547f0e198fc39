"""Usage accounting: tokens read from upstream answers, deltas batched into the log.

`TokenMeter` finds `usage.total_tokens` in a whole JSON answer, or in the last
SSE event that carries `usage` (so streams count too), without parsing
anything it does not need. What a worker reports is not trusted: a negative,
non-integer or absurd count (2**64, which orjson could not even write back
out in a listing) is clamped per request to `MAX_TOKENS_PER_REQUEST`, and
totals saturate at `MAX_TOTAL`. `UsageBook` adds up requests and tokens per
subject ("key:<id>", "model:<tenant/name>", "tenant:<name>"). With Redis
(`--redis-url`, the node's `HotStore`), each request's usage goes to Redis in one
pipelined round trip, off the request's path, so the totals every node reads are
exact. Without it (or while the store finds Redis unreachable) the counts are
kept in memory and a background
loop commits them every few seconds as one `usage.flush` command: never one
Raft command per request; a node that crashes loses at most its last
unflushed interval. A reader adds both: the replicated totals and Redis's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from node.limits.hot_store import HotStore

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline
from node.service import Periodic

log = logging.getLogger(__name__)


class TokenMeter:
    __slots__ = ("_tail", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self._tail = b""

    def from_body(self, body: bytes) -> None:
        try:
            usage = orjson.loads(body).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            return
        self.tokens = _total(usage)

    def feed(self, chunk: bytes) -> None:
        """Keep only what follows the last `data:` line that may hold usage."""
        self._tail = (self._tail + chunk)[-16384:]
        if b'"usage"' in chunk:
            for line in reversed(self._tail.split(b"\n")):
                if line.startswith(b"data:") and b'"usage"' in line:
                    try:
                        self.tokens = _total(orjson.loads(line[5:].strip()).get("usage"))
                    except (orjson.JSONDecodeError, AttributeError):
                        continue
                    break


# The most tokens one request may count: above any real context and output, and far
# below what would overflow a counter. A worker reporting more is clamped to it.
MAX_TOKENS_PER_REQUEST = 10_000_000
# Totals saturate here (JavaScript's largest exact integer; orjson refuses ints > 64 bits).
MAX_TOTAL = 2**53 - 1


def _count(value: Any) -> int:
    """A reported token count as a sane int: negative, non-numeric and NaN count 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return min(max(0, int(value)), MAX_TOKENS_PER_REQUEST)


def _total(usage: Any) -> int:
    """`usage.total_tokens`, else the sum of its parts; clamped whatever the worker says."""
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if total is not None:
        return _count(total)
    parts = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
    return min(sum(_count(usage.get(k)) for k in parts), MAX_TOKENS_PER_REQUEST)


def _saturated(value: Any) -> int:
    """A total as shown: a non-negative int no larger than MAX_TOTAL (old state may hold
    anything a worker once claimed)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return min(max(0, value), MAX_TOTAL)


def _bounded(total: dict[str, Any]) -> dict[str, Any]:
    for name in ("total_requests", "requests_today", "tokens_used"):
        total[name] = min(total[name], MAX_TOTAL)
    return total


REDIS_PREFIX = "meshgate:usage:"
DAY_TTL_SECS = 2 * 86400


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


class UsageBook:
    def __init__(
        self,
        commit: Callable[[dict[str, Any], str], Awaitable[Any]],  # (args, request id)
        interval: float = 2.0,
        store: HotStore | None = None,  # None: counters only in memory and the log
    ) -> None:
        self._commit = commit
        self.interval = interval
        self._deltas: dict[str, dict[str, Any]] = {}
        # A batch sent whose outcome is not known (request id, deltas): it is sent again
        # under the same request id until it settles, so that a batch that did land is
        # not counted twice, and the deltas gathered meanwhile wait for the next batch.
        self._unsettled: tuple[str, dict[str, dict[str, Any]]] | None = None
        self._flusher = Periodic("usage-flush", self.flush, interval)
        self._store = store if store is not None and store.configured else None
        self._writes: set[asyncio.Task[None]] = set()

    def record(self, subjects: Iterable[str], tokens: int) -> None:
        if self._store is not None and self._store.healthy:
            task = asyncio.get_running_loop().create_task(
                self._to_redis(list(subjects), max(0, tokens), time.time())
            )
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
            return
        self._to_memory(subjects, tokens, time.time())

    async def _to_redis(self, subjects: list[str], tokens: int, now: float) -> None:
        def fill(pipe: Pipeline) -> None:
            for subject in subjects:
                key = REDIS_PREFIX + subject
                pipe.hincrby(key, "total_requests", 1)
                pipe.hincrby(key, "tokens_used", tokens)
                pipe.hset(key, "last_access", repr(now))
                day_key = f"{key}:day:{_day(now)}"
                pipe.incr(day_key)
                pipe.expire(day_key, DAY_TTL_SECS)

        assert self._store is not None
        # Unreachable or slow: keep them for the log. A usage write off the request path
        # does not decide for admission whether Redis is down.
        if await self._store.pipeline(fill, marks_down=False) is None:
            self._to_memory(subjects, tokens, now)

    async def read(self, subject: str, stored: dict[str, Any]) -> dict[str, Any]:
        """Totals for a subject: replicated (`stored`) + not yet flushed + Redis's."""
        pending = self.pending(subject)
        today = _day(time.time())
        total = {
            "total_requests": _saturated(stored.get("total_requests", 0)) + pending["requests"],
            "requests_today": (
                _saturated(stored.get("requests_today", 0)) if stored.get("day") == today else 0
            )
            + pending["requests"],
            "tokens_used": _saturated(stored.get("tokens_used", 0)) + pending["tokens"],
            "last_access": max(
                filter(None, (stored.get("last_access"), pending.get("last_access"))), default=None
            ),
        }
        store = self._store
        if store is None:
            return _bounded(total)

        def fill(pipe: Pipeline) -> None:
            pipe.hgetall(REDIS_PREFIX + subject)
            pipe.get(f"{REDIS_PREFIX}{subject}:day:{today}")

        replies = await store.pipeline(fill) if store.healthy else None
        if replies is None:
            total["redis_unreachable"] = "the counters in Redis could not be read; totals are low"
            return _bounded(total)
        counts, today_count = replies
        total["total_requests"] += _saturated(int(counts.get(b"total_requests", 0)))
        total["tokens_used"] += _saturated(int(counts.get(b"tokens_used", 0)))
        total["requests_today"] += _saturated(int(today_count or 0))
        last = counts.get(b"last_access")
        if last:
            total["last_access"] = max(filter(None, (total["last_access"], float(last))))
        return _bounded(total)

    def _to_memory(self, subjects: Iterable[str], tokens: int, now: float) -> None:
        for subject in subjects:
            delta = self._deltas.setdefault(subject, {"requests": 0, "tokens": 0})
            delta["requests"] += 1
            delta["tokens"] += max(0, tokens)
            delta["last_access"] = now

    def pending(self, subject: str) -> dict[str, Any]:
        return self._deltas.get(subject, {"requests": 0, "tokens": 0})

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Send the unsettled batch again, if any, then the deltas gathered since."""
        while True:
            if self._unsettled is None:
                if not self._deltas:
                    return
                deltas, self._deltas = self._deltas, {}
                day = time.strftime("%Y-%m-%d", time.gmtime())
                for delta in deltas.values():
                    delta["day"] = day
                self._unsettled = (uuid.uuid4().hex, deltas)
            rid, deltas = self._unsettled
            try:
                await self._commit({"deltas": deltas}, rid)
            except Exception as exc:
                # Refused by the command's rules, in the log or before it: sending it again
                # would be refused again.
                refused = getattr(exc, "extra", {}).get("outcome") == "rejected"
                if refused or getattr(exc, "status", None) == 400:
                    log.error("usage batch %s refused (%s); dropped", rid, exc)
                    self._unsettled = None
                    continue
                # No quorum, or an unknown outcome: the same batch goes again next time.
                log.warning("usage flush failed (%s); %d subject(s) kept", exc, len(deltas))
                return
            self._unsettled = None
