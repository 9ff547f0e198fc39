"""Slow down password guessing: failed logins make the next try wait, per user and per address.

A few failures are free (people mistype). After that, each failure doubles the
wait before the next attempt from the same client address, and for the same
username from anywhere, up to a ceiling. While a wait runs, the login answers
429 with `Retry-After` without even hashing the password, so a brute force
costs the node almost nothing and cannot starve other requests of CPU. A
success clears the username's and the address's record.

Records live on each node (a guessing attacker spread over N nodes gets N
times the tries, still exponentially slowed) and are bounded in number: the
least recently touched are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
BASE_DELAY_SECS = 1.0
MAX_DELAY_SECS = 900.0
MAX_RECORDS = 10_000


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0


class LoginThrottle:
    def __init__(
        self,
        free_failures: int = FREE_FAILURES,
        base_delay: float = BASE_DELAY_SECS,
        max_delay: float = MAX_DELAY_SECS,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_records = max_records
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def retry_after(self, username: str, address: str) -> float:
        """Seconds the caller must wait before trying again (0: try now)."""
        now = self._clock()
        wait = 0.0
        for key in _keys(username, address):
            record = self._records.get(key)
            if record is not None:
                wait = max(wait, record.blocked_until - now)
        return wait

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        for key in _keys(username, address):
            record = self._records.pop(key, None) or _Record()
            record.failures += 1
            excess = record.failures - self.free_failures
            if excess > 0:
                delay = min(self.max_delay, self.base_delay * 2 ** (excess - 1))
                record.blocked_until = now + delay
            self._records[key] = record  # most recently touched last
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        for key in _keys(username, address):
            self._records.pop(key, None)


def _keys(username: str, address: str) -> tuple[str, str]:
    return (f"user:{username[:256]}", f"addr:{address}")
