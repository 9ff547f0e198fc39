"""A deadline that moves with every request, on one timer.

Making and cancelling an event-loop timer per request costs more than the rest of some
hot paths' bookkeeping. Deadlines on a connection only move later, request after request,
so one timer serves them all: it is moved only when a deadline would come before it,
and when it fires before the current deadline it sets itself again for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

_EARLY: Final = 0.001  # a timer may fire this early (the loop's clock resolution)


class Deadline:
    """Calls `expired` once the time set last passes, unless cleared before."""

    __slots__ = ("_expired", "_loop", "_timer", "at")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._expired = expired
        self._timer: asyncio.TimerHandle | None = None
        self.at: float | None = None  # None: nothing is due

    def set(self, at: float) -> None:
        self.at = at
        timer = self._timer
        if timer is None or timer.when() > at:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(at, self._fire)

    def set_after(self, seconds: float) -> None:
        self.set(self._loop.time() + seconds)

    def clear(self) -> None:
        self.at = None  # the timer finds nothing due when it fires

    def cancel(self) -> None:
        """Clear, and drop the timer too (the connection is gone)."""
        self.at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        at = self.at
        if at is None:
            return
        if at - self._loop.time() > _EARLY:  # set later since the timer was made
            self._timer = self._loop.call_at(at, self._fire)
            return
        self.at = None
        self._expired()
