"""The background-service base: a named periodic task that survives and rate-limits failures,
ends on DONE, re-reads a callable interval, and stops by cancelling and waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from node.service import DONE, FailureLog, Periodic, cancel_and_wait


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.005)


def test_runs_the_step_in_a_named_task_until_stopped() -> None:
    async def main() -> None:
        calls: list[str | None] = []

        async def step() -> None:
            task = asyncio.current_task()
            calls.append(task.get_name() if task else None)

        service = Periodic("ticker", step, 0.01)
        service.start()
        service.start()  # a second start while running is a no-op
        await until(lambda: len(calls) >= 3)
        assert service.running
        await service.stop()
        assert not service.running
        seen = len(calls)
        await asyncio.sleep(0.05)
        assert len(calls) == seen  # nothing runs after stop
        assert set(calls) == {"ticker"}
        await service.stop()  # stopping twice is harmless

    run(main)


def test_first_step_waits_one_interval_unless_immediately() -> None:
    async def main() -> None:
        calls: list[str] = []

        async def later() -> None:
            calls.append("later")

        async def now() -> None:
            calls.append("now")

        slow = Periodic("later", later, 60.0)
        fast = Periodic("now", now, 60.0, immediately=True)
        slow.start()
        fast.start()
        await until(lambda: "now" in calls)
        await slow.stop()
        await fast.stop()
        assert calls == ["now"]

    run(main)


def test_a_failing_step_is_logged_once_per_period_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        calls = 0

        async def step() -> None:
            nonlocal calls
            calls += 1
            if calls <= 5:
                raise RuntimeError(f"boom {calls}")

        service = Periodic("flaky", step, 0.001)
        with caplog.at_level(logging.INFO, logger="node.service"):
            service.start()
            await until(lambda: calls >= 7)
            await service.stop()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # five failures in a row, one log line
        assert "flaky failed" in warnings[0].getMessage()
        assert warnings[0].exc_info is not None and "boom 1" in str(warnings[0].exc_info[1])
        recovered = [r for r in caplog.records if r.levelno == logging.INFO]
        assert [r.getMessage() for r in recovered] == ["flaky works again after 5 failure(s)"]

    run(main)


def test_failure_log_logs_again_after_its_period_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = FailureLog("probe", every=0.0)
    quiet = FailureLog("quiet", every=3600.0)
    with caplog.at_level(logging.WARNING, logger="node.service"):
        for _ in range(3):
            failures.failed(ValueError("x"))
            quiet.failed(ValueError("y"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("probe failed: x") == 3
    assert messages.count("quiet failed: y") == 1
    assert quiet.failures == 3


def test_done_ends_the_loop() -> None:
    async def main() -> None:
        calls = 0

        async def step() -> object:
            nonlocal calls
            calls += 1
            return DONE if calls == 3 else None

        service = Periodic("probe", step, 0.001)
        service.start()
        await until(lambda: not service.running)
        assert calls == 3

    run(main)


def test_a_callable_interval_is_read_again_while_waiting() -> None:
    async def main() -> None:
        interval = [3600.0]
        calls = 0

        async def step() -> None:
            nonlocal calls
            calls += 1

        service = Periodic("checks", step, lambda: interval[0])
        service.start()
        await asyncio.sleep(0.05)
        assert calls == 0
        interval[0] = 0.01  # shortened at runtime: applies within one nap
        await until(lambda: calls >= 2)
        await service.stop()

    run(main)


def test_stop_cancels_a_step_in_progress() -> None:
    async def main() -> None:
        entered = asyncio.Event()
        cancelled = False

        async def step() -> None:
            nonlocal cancelled
            entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled = True
                raise

        service = Periodic("slow", step, 0.0, immediately=True)
        service.start()
        await asyncio.wait_for(entered.wait(), 5)
        await service.stop()
        assert cancelled and not service.running

    run(main)


def test_cancel_and_wait_ends_every_task() -> None:
    async def main() -> None:
        tasks = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(3)]
        finished = asyncio.create_task(asyncio.sleep(0))
        await finished
        await cancel_and_wait([*tasks, finished])
        assert all(t.cancelled() for t in tasks)

    run(main)


def test_cancel_and_wait_keeps_the_callers_own_cancellation() -> None:
    async def main() -> None:
        stubborn = asyncio.create_task(shielded_sleep())
        stopper = asyncio.create_task(cancel_and_wait([stubborn]))
        await asyncio.sleep(0.01)  # the stopper now waits for a task that ignores cancel
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper
        stubborn.cancel()
        await asyncio.wait([stubborn])

    run(main)


async def shielded_sleep() -> None:
    """Ignores the first cancellation (a task busy finishing something)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(3600)


def test_a_task_that_loses_a_cancel_is_cancelled_again() -> None:
    """Python 3.11's wait_for can swallow a cancel (a plane replica's stop hung on it)."""

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # lost, as wait_for loses it when its inner future completes at once
        await asyncio.sleep(10)

    async def scenario() -> bool:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([task]), 5)
        return task.cancelled()

    assert asyncio.run(scenario())
