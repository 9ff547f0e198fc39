"""Admission control: at most N proxied requests at once, a bounded FIFO queue, a wait limit.

A request that finds every slot taken waits in the queue; when the queue is
full, or the wait passes `queue_timeout`, it is refused and the caller answers
429 with `Retry-After`. A released slot is handed straight to the oldest
waiter, so a burst cannot overtake requests already queued.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque


class Rejected(Exception):
    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason  # queue_full | queue_timeout
        self.retry_after = retry_after


class Admission:
    def __init__(self, max_concurrent: int, queue_size: int, queue_timeout: float) -> None:
        self.max_concurrent = max_concurrent if max_concurrent > 0 else 0  # 0 = unlimited
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.rejected = {"queue_full": 0, "queue_timeout": 0}

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _retry_after(self) -> int:
        return max(1, min(60, math.ceil(self.queue_timeout / 4) if self.queue_timeout else 1))

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody queues for it (no coroutine to await)."""
        if not self.max_concurrent or (self.in_flight < self.max_concurrent and not self._waiters):
            self.in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.take_now():
            return
        if len(self._waiters) >= self.queue_size:
            self.rejected["queue_full"] += 1
            raise Rejected("queue_full", self._retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                self._remove(waiter)
            if isinstance(exc, TimeoutError):
                self.rejected["queue_timeout"] += 1
                raise Rejected("queue_timeout", self._retry_after()) from None
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter; in_flight unchanged
                return
        self.in_flight -= 1

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
