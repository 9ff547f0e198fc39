"""Slow down password guessing: failed logins make the next try wait, per user and per address.

A few failures are free (people mistype). After that, each failure doubles the
wait before the next attempt from the same client address, and for the same
username from anywhere, up to a ceiling. While a wait runs, the login answers
429 with `Retry-After` without even hashing the password, so a brute force
costs the node almost nothing and cannot starve other requests of CPU. A
success clears the username's and the address's record.

An attempt is charged as a failure *before* its password is checked, and the
charge is taken back on success: so a burst of parallel guesses, all checked
before the first of them fails, cannot slip past the count.

The two kinds of record differ on purpose. An address is slowed hard (five
free tries, then up to 15 minutes): it is the guesser. A username is slowed
gently (twenty free, then at most a minute): anyone can fail logins for it,
and a hard lock would let them lock the real admin out; a minute still caps a
distributed guesser at about 1,440 tries a day.

Records live on each node (a guesser spread over N nodes gets N times the
tries, still exponentially slowed) and are bounded in number: the least
recently touched are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class Policy:
    free_failures: int
    base_delay: float
    max_delay: float


ADDRESS_POLICY = Policy(free_failures=5, base_delay=1.0, max_delay=900.0)
USERNAME_POLICY = Policy(free_failures=20, base_delay=1.0, max_delay=60.0)


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0


class LoginThrottle:
    def __init__(
        self,
        address: Policy = ADDRESS_POLICY,
        username: Policy = USERNAME_POLICY,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policies = {"addr": address, "user": username}
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
        """Count a failure (or an attempt not yet checked: see `succeeded`)."""
        now = self._clock()
        for key in _keys(username, address):
            policy = self.policies[key.partition(":")[0]]
            record = self._records.pop(key, None) or _Record()
            record.failures += 1
            excess = record.failures - policy.free_failures
            if excess > 0:
                delay = min(policy.max_delay, policy.base_delay * 2 ** (excess - 1))
                record.blocked_until = now + delay
            self._records[key] = record  # most recently touched last
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        for key in _keys(username, address):
            self._records.pop(key, None)


def _keys(username: str, address: str) -> tuple[str, str]:
    return (f"user:{username[:256]}", f"addr:{address}")
