"""Usage accounting: tokens read from upstream answers, deltas batched into the log.

`TokenMeter` finds `usage.total_tokens` in a whole JSON answer, or in the last
SSE event that carries `usage` (so streams count too), without parsing
anything it does not need. `UsageBook` adds up requests and tokens per
subject ("key:<id>", "model:<tenant/name>", "tenant:<name>") in memory and a
background loop commits them every few seconds as one `usage.flush` command:
never one Raft command per request. A node that crashes loses at most its
last unflushed interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

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


def _total(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = [
        usage.get(k)
        for k in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
    ]
    return sum(p for p in parts if isinstance(p, int))


class UsageBook:
    def __init__(
        self, commit: Callable[[dict[str, Any]], Awaitable[Any]], interval: float = 2.0
    ) -> None:
        self._commit = commit
        self.interval = interval
        self._deltas: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, subjects: Iterable[str], tokens: int) -> None:
        now = time.time()
        for subject in subjects:
            delta = self._deltas.setdefault(subject, {"requests": 0, "tokens": 0})
            delta["requests"] += 1
            delta["tokens"] += max(0, tokens)
            delta["last_access"] = now

    def pending(self, subject: str) -> dict[str, Any]:
        return self._deltas.get(subject, {"requests": 0, "tokens": 0})

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="usage-flush")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._deltas:
            return
        deltas, self._deltas = self._deltas, {}
        day = time.strftime("%Y-%m-%d", time.gmtime())
        for delta in deltas.values():
            delta["day"] = day
        try:
            await self._commit({"deltas": deltas})
        except Exception as exc:  # no quorum: keep the counts and try again next time
            log.warning("usage flush failed (%s); keeping %d subject(s)", exc, len(deltas))
            for subject, delta in deltas.items():
                mine = self._deltas.setdefault(subject, {"requests": 0, "tokens": 0})
                mine["requests"] += delta["requests"]
                mine["tokens"] += delta["tokens"]
                mine["last_access"] = max(mine.get("last_access") or 0, delta["last_access"])
