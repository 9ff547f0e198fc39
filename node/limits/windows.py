"""A sliding-window count in a fixed ring of slots, rounded so it never undercounts.

The window is `span` seconds cut into `slots` slots of `span / slots` seconds.
At time `now` the count covers the slot holding `now` and the `slots` slots
before it: that is every slot that overlaps `[now - span, now]`, so every event
of the last `span` seconds is counted (with up to one slot of older ones). A
limiter that admits only while `count < limit` therefore never admits more than
`limit` in any interval of `span` seconds (docs/quotas.md has the proof), with
a fixed memory of `slots + 1` integers per window, where an exact log would keep
one timestamp per event.

The Redis scripts (`quotas_redis.py`) keep the same ring with the same rules.
"""

from __future__ import annotations

import math

# The quota windows: limit field -> (seconds, slots), in the order of the Redis
# scripts' arguments; local counting and the scripts are both built from it.
QUOTA_WINDOWS = {
    "burst": (1.0, 10),
    "requests_per_minute": (60.0, 60),
    "requests_per_hour": (3600.0, 60),
    "tokens_per_hour": (3600.0, 60),
}


class SlidingCount:
    __slots__ = ("counts", "head", "size", "slots", "span", "total")

    def __init__(self, span: float, slots: int) -> None:
        self.span, self.slots = span, slots
        self.size = slots + 1  # the slots that overlap [now - span, now]
        self.counts = [0] * self.size
        self.head: int | None = None  # the newest slot's number
        self.total = 0

    def advance(self, now: float) -> int:
        """Drop the slots that left the window by `now`; the count of the window."""
        slot = self._slot(now)
        head = self.head
        if head is None:
            self.head = slot
        elif slot > head:  # a clock stepping back keeps counting into the newest slot
            counts, size = self.counts, self.size
            for s in range(head + 1, head + 1 + min(slot - head, size)):
                self.total -= counts[s % size]
                counts[s % size] = 0
            self.head = slot
        return self.total

    def _slot(self, now: float) -> int:
        # times `slots` before dividing by `span`: 0.1 s slots stay exact at whole tenths
        return math.floor(now * self.slots / self.span)

    def _start(self, slot: int) -> float:
        return slot * self.span / self.slots

    def add(self, amount: int = 1) -> None:
        """Count `amount` in the newest slot (call `advance` first)."""
        if self.head is not None and amount:
            self.counts[self.head % self.size] += amount
            self.total += amount

    def wait(self, now: float, limit: int) -> float:
        """Seconds until the count drops below `limit` (0 if it already is)."""
        if self.total < limit or self.head is None:
            return 0.0
        left = self.total
        for slot in range(self.head - self.size + 1, self.head + 1):
            left -= self.counts[slot % self.size]
            if left < limit:
                return max(0.0, self._start(slot + self.size) - now)
        return max(0.0, self._start(self.head + self.size) - now)

    def reset(self, now: float) -> float:
        """Seconds until the oldest counted event leaves the window (0 if none is counted)."""
        return self.wait(now, self.total) if self.total else 0.0
