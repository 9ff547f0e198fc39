"""A circuit breaker per worker, on each node (hot state, never replicated).

closed -> open after `failure_threshold` failures within `window` seconds;
open -> half-open once `timeout` seconds have passed; half-open lets at most
`success_threshold` trial requests through at a time, closes after that many
successes in a row, and reopens on any failure. SMG's defaults: 10 failures,
3 successes, 60 s open, 120 s window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_NUMBER = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 10
    success_threshold: int = 3
    timeout: float = 60.0
    window: float = 120.0
    enabled: bool = True


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_failures",
        "_opened_at",
        "_state",
        "_successes",
        "_trials",
        "settings",
        "transitions",
    )

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._state = CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._successes = 0
        self._trials = 0
        self.transitions = 0

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.settings.timeout:
            self._move(HALF_OPEN)
        return self._state

    def allows(self) -> bool:
        """May a request be sent now? (Does not reserve a trial slot.)"""
        if not self.settings.enabled:
            return True
        state = self.state
        if state == CLOSED:
            return True
        return state == HALF_OPEN and self._trials < self.settings.success_threshold

    def on_attempt(self) -> None:
        """A request is being sent; in half-open it takes a trial slot."""
        if self._state == HALF_OPEN:
            self._trials += 1

    def record_success(self) -> None:
        if self._state == HALF_OPEN:
            self._trials = max(0, self._trials - 1)
            self._successes += 1
            if self._successes >= self.settings.success_threshold:
                self._move(CLOSED)
        elif self._state == CLOSED:
            self._failures.clear()

    def record_failure(self) -> None:
        if not self.settings.enabled:
            return
        now = self._clock()
        if self._state == HALF_OPEN:
            self._move(OPEN)
            return
        if self._state == OPEN:
            return
        failures = self._failures
        failures.append(now)
        while failures and now - failures[0] > self.settings.window:
            failures.popleft()
        if len(failures) >= self.settings.failure_threshold:
            self._move(OPEN)

    def settle(self, worked: bool | None) -> None:
        """End an attempt: True worked, False failed, None unknown (frees a half-open trial)."""
        if worked is True:
            self.record_success()
        elif worked is False:
            self.record_failure()
        elif self._state == HALF_OPEN:
            self._trials = max(0, self._trials - 1)

    def reset(self) -> None:
        self._move(CLOSED)

    def _move(self, state: str) -> None:
        if state == OPEN:
            self._opened_at = self._clock()
        self._state = state
        self._failures.clear()
        self._successes = 0
        self._trials = 0
        self.transitions += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state,
            "recent_failures": len(self._failures),
            "transitions": self.transitions,
        }
