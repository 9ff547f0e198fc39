"""One background service: a named asyncio task that runs a step on an interval.

Health checks, peer polls, usage flushes and the Redis recovery probe all
need the same loop: wait, run a step, survive its failure, and stop cleanly.
Written out in each part, every copy handled failures a little differently
(one let the task die on the first exception, silently). So the loop lives
here once:

* the task is named, so `asyncio.all_tasks()` and a stuck-task dump say what
  it is;
* the interval may be a callable read each round, so a setting changed at
  runtime takes effect without a restart; the loop then wakes at least every
  `MAX_NAP` seconds to notice a shorter interval at once;
* a step that raises is logged with its exception, at most once per
  `LOG_EVERY` seconds (a step failing every second would flood the log
  otherwise), and the loop carries on;
* a step may return `DONE` to end the loop (a probe that succeeded);
* `stop()` cancels the task and waits for it to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

log = logging.getLogger(__name__)

LOG_EVERY: Final = 60.0  # seconds between two logs of a step that keeps failing
MAX_NAP: Final = 0.5  # longest sleep when the interval is read again each round
CANCEL_AGAIN_SECS: Final = 0.5  # a cancelled task still running then is cancelled again


class _Done:
    def __repr__(self) -> str:
        return "DONE"


DONE: Final = _Done()  # a step returns this to end its service

Step = Callable[[], Awaitable[object]]
Interval = float | Callable[[], float]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel the tasks, then wait until each has ended.

    `asyncio.wait` rather than awaiting each task: a caller that is itself
    cancelled meanwhile must see its own CancelledError, not have it swallowed. A task
    still running after CANCEL_AGAIN_SECS is cancelled again: Python 3.11's `wait_for`
    loses a cancel that lands as its inner future completes, and the task runs on."""
    stopping = [task for task in tasks if not task.done()]
    pending = set(stopping)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECS)
    for task in stopping:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed as it stopped", task.get_name(), exc_info=task.exception())


class FailureLog:
    """Logs a repeating failure once, then at most once per `every` seconds, with a count."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger = log,
        every: float = LOG_EVERY,
        traceback: bool = True,  # False for expected failures, whose message says it all
    ) -> None:
        self.what = what
        self.logger = logger
        self.every = every
        self.traceback = traceback
        self.failures = 0  # in a row, since the last success
        self._unlogged = 0
        self._logged_at: float | None = None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._unlogged += 1
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < self.every:
            return
        times = f" ({self._unlogged} failures since the last log)" if self._unlogged > 1 else ""
        trace = exc if self.traceback else None
        self.logger.warning("%s failed%s: %s", self.what, times, exc, exc_info=trace)
        self._logged_at = now
        self._unlogged = 0

    def succeeded(self) -> None:
        if self.failures:
            self.logger.info("%s works again after %d failure(s)", self.what, self.failures)
        self.failures = 0
        self._unlogged = 0
        self._logged_at = None


class Periodic:
    """Runs `step` every `interval` seconds in a task named `name`, until stopped or DONE."""

    def __init__(
        self,
        name: str,
        step: Step,
        interval: Interval,
        *,
        immediately: bool = False,  # run the first step at start, not one interval later
        logger: logging.Logger = log,
    ) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._immediately = immediately
        self.failures = FailureLog(name, logger)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop; a no-op while it runs."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end (a step in progress is cancelled too)."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            await cancel_and_wait([task])

    async def _loop(self) -> None:
        if not self._immediately:
            await self._wait()
        while True:
            try:
                result = await self._step()
            except Exception as exc:
                self.failures.failed(exc)
            else:
                self.failures.succeeded()
                if result is DONE:
                    return
            await self._wait()

    async def _wait(self) -> None:
        if not callable(self._interval):
            await asyncio.sleep(self._interval)
            return
        # Read again each nap, so a shorter interval set meanwhile applies at once.
        clock = asyncio.get_running_loop().time
        started = clock()
        while (left := self._interval() - (clock() - started)) > 0:
            await asyncio.sleep(min(left, MAX_NAP))
