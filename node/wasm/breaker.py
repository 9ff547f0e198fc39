"""A circuit breaker per module per node: a module that keeps failing stops being called.

`failures` calls in a row that trap, time out or run out of memory open it; after
`cooldown` seconds one call is let through (half-open): success closes it, another
failure opens it again. Hot state: each node keeps its own, nothing is replicated.
Chains run on wasm threads, so every change holds the breaker's lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class ModuleBreaker:
    failures: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    state: str = CLOSED
    in_a_row: int = 0
    opened_at: float = 0.0
    trips: int = 0  # how often it opened, for /ha/local and metrics
    _probing: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def allow(self) -> bool:
        """May the module be called now? (Half-open: one probe at a time.)"""
        with self._lock:
            return self._allow()

    def _allow(self) -> bool:
        if self.state == OPEN and self.clock() - self.opened_at >= self.cooldown:
            self.state, self._probing = HALF_OPEN, False
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return self.state == CLOSED

    def abandoned(self) -> None:
        """A call that ended without a verdict (cancelled, or a host error): a probe it was
        may be sent again, so the breaker never stays half-open for good."""
        with self._lock:
            self._probing = False

    def succeeded(self) -> None:
        with self._lock:
            self.state, self.in_a_row, self._probing = CLOSED, 0, False

    def failed(self) -> None:
        with self._lock:
            self.in_a_row += 1
            if self.state == HALF_OPEN or self.in_a_row >= self.failures:
                self.state, self.opened_at, self._probing = OPEN, self.clock(), False
                self.trips += 1

    def view(self) -> dict[str, object]:
        return {"state": self.state, "failures_in_a_row": self.in_a_row, "trips": self.trips}
