"""The instances of one module: `size` made before the first call, each taken by one call at
a time, so at most `size` calls of a module run at once; a call that finds them all taken
waits up to `wait` seconds, then fails as busy. An instance that failed is dropped and a
new one is made in the background, so the request path never instantiates."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Generic, TypeVar

from node.wasm.errors import WasmBusy, WasmFailed

log = logging.getLogger("meshgate.wasm")
T = TypeVar("T")
# Backoff, in seconds, when making an instance raises something unexpected, and how many
# tries before the pool reports it as broken (a call then tries again).
_RETRY_FIRST, _RETRY_MAX, _RETRIES = 0.05, 1.0, 5


@cache
def _maker() -> ThreadPoolExecutor:
    """Re-instantiation after failures, off the threads that serve calls."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="wasm-refill")


class InstancePool(Generic[T]):
    def __init__(self, make: Callable[[], T], size: int, wait: float, name: str) -> None:
        self._make, self._size, self._wait, self.name = make, size, wait, name
        self._idle: list[T] = [make() for _ in range(size)]  # a bad module fails here
        self._cond = threading.Condition()
        self._missing = 0  # dropped instances not yet made again
        self._refilling = False
        self._broken: WasmFailed | None = None  # why the last re-instantiation failed

    def take(self, since: float | None = None) -> T:
        """An idle instance; WasmBusy once the wait has passed since `since` (the
        monotonic time the caller started waiting, now by default: a request that already
        queued for a thread has waited), or the reason none can be made."""
        until = (time.monotonic() if since is None else since) + self._wait
        with self._cond:
            while not self._idle:
                if self._broken is not None and self._missing == self._size:
                    self._start_refill()  # try again, at most one at a time
                    raise self._broken  # every instance failed and none could be made
                left = until - time.monotonic()
                if left <= 0:
                    raise WasmBusy(self.name, self._size, self._wait)
                self._cond.wait(left)
            return self._idle.pop()

    def give(self, instance: T) -> None:
        with self._cond:
            self._idle.append(instance)
            self._cond.notify()

    def drop(self) -> None:
        """The instance taken is gone: make another in the background."""
        with self._cond:
            self._missing += 1
            self._start_refill()

    def _start_refill(self) -> None:  # under the lock
        if not self._refilling:
            self._refilling = True
            _maker().submit(self._refill)

    def _refill(self) -> None:
        delay, tries = _RETRY_FIRST, 0
        while True:
            try:
                instance = self._make()
            except Exception as exc:  # anything: _refilling must never stay set for good
                tries += 1
                if isinstance(exc, WasmFailed) or tries >= _RETRIES:
                    self._give_up(exc)
                    return
                log.exception("WASM module %r: making an instance raised", self.name)
                time.sleep(delay)  # on the refill thread, never a request's
                delay = min(delay * 2, _RETRY_MAX)
                continue
            with self._cond:
                self._broken = None
                self._missing -= 1
                self._idle.append(instance)
                self._cond.notify()
                if not self._missing:
                    self._refilling = False
                    return

    def _give_up(self, exc: Exception) -> None:
        """No instance for now: a call that finds none idle fails with why, and tries again
        (the one refill thread serves every module, so it does not retry forever)."""
        log.warning("WASM module %r: a new instance failed: %s", self.name, exc)
        failed = exc if isinstance(exc, WasmFailed) else WasmFailed(self.name, "trap", repr(exc))
        with self._cond:
            self._broken, self._refilling = failed, False
            self._cond.notify_all()
