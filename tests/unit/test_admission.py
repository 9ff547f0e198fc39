"""Unit tests of admission control (`node/limits/admission.py`).

pytest-asyncio is not installed: each test drives its own loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from node.limits.admission import Admission, Rejected


async def spin(rounds: int = 10) -> None:
    """Let every ready task run (a zero-length yield, not a timed sleep)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_unlimited_never_queues() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=0, queue_size=0, queue_timeout=0.0)
        for _ in range(1000):
            await adm.acquire()
        assert adm.in_flight == 1000
        assert adm.queued == 0
        for _ in range(1000):
            adm.release()
        assert adm.in_flight == 0
        assert adm.rejected == {"queue_full": 0, "queue_timeout": 0}

    run(main())


def test_negative_max_concurrent_means_unlimited() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=-5, queue_size=0, queue_timeout=1.0)
        assert adm.max_concurrent == 0
        for _ in range(10):
            await adm.acquire()
        assert adm.in_flight == 10

    run(main())


def test_below_capacity_acquires_at_once() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=2, queue_size=0, queue_timeout=1.0)
        await adm.acquire()
        await adm.acquire()
        assert adm.in_flight == 2 and adm.queued == 0
        adm.release()
        assert adm.in_flight == 1
        await adm.acquire()
        assert adm.in_flight == 2

    run(main())


def test_waiters_get_released_slots_in_fifo_order() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=10, queue_timeout=30.0)
        await adm.acquire()
        order: list[int] = []

        async def waiter(n: int) -> None:
            await adm.acquire()
            order.append(n)

        tasks = []
        for n in range(4):
            tasks.append(asyncio.create_task(waiter(n)))
            await spin()
        assert adm.queued == 4 and order == []
        for expected in range(4):
            adm.release()  # hands the slot to the oldest waiter
            await spin()
            assert order == list(range(expected + 1))
            assert adm.in_flight == 1  # the slot passed on; never over the limit
        assert adm.queued == 0
        await asyncio.gather(*tasks)
        adm.release()
        assert adm.in_flight == 0

    run(main())


def test_new_arrival_does_not_overtake_queued_waiter() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=10, queue_timeout=30.0)
        await adm.acquire()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await adm.acquire()
            order.append(name)

        first = asyncio.create_task(waiter("queued"))
        await spin()
        adm.release()  # the slot is promised to "queued" before it has run again
        late = asyncio.create_task(waiter("late"))
        await spin()
        assert order == ["queued"]
        assert adm.in_flight == 1 and adm.queued == 1
        adm.release()
        await asyncio.gather(first, late)
        assert order == ["queued", "late"]
        adm.release()
        assert adm.in_flight == 0

    run(main())


def test_queue_full_is_rejected_with_retry_after() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=1, queue_timeout=30.0)
        await adm.acquire()
        waiting = asyncio.create_task(adm.acquire())
        await spin()
        assert adm.queued == 1
        with pytest.raises(Rejected) as caught:
            await adm.acquire()
        assert caught.value.reason == "queue_full"
        assert str(caught.value) == "queue_full"
        assert caught.value.retry_after == 8  # ceil(30 / 4)
        assert adm.rejected == {"queue_full": 1, "queue_timeout": 0}
        assert adm.queued == 1 and adm.in_flight == 1  # the refused one took nothing
        adm.release()
        await waiting
        adm.release()
        assert adm.in_flight == 0

    run(main())


@pytest.mark.parametrize(
    ("timeout", "retry_after"), [(0.0, 1), (0.5, 1), (2.0, 1), (10.0, 3), (1e6, 60)]
)
def test_retry_after_is_between_1_and_60(timeout: float, retry_after: int) -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=0, queue_timeout=timeout)
        await adm.acquire()
        with pytest.raises(Rejected) as caught:
            await adm.acquire()
        assert caught.value.reason == "queue_full"
        assert caught.value.retry_after == retry_after

    run(main())


def test_zero_queue_refuses_at_once_when_full() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=0, queue_timeout=30.0)
        await adm.acquire()
        for _ in range(3):
            with pytest.raises(Rejected) as caught:
                await adm.acquire()
            assert caught.value.reason == "queue_full"
        assert adm.rejected["queue_full"] == 3
        assert adm.in_flight == 1 and adm.queued == 0

    run(main())


@pytest.mark.parametrize("timeout", [0.0, 0.01])
def test_queue_timeout_rejects_and_cleans_the_queue(timeout: float) -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=5, queue_timeout=timeout)
        await adm.acquire()
        with pytest.raises(Rejected) as caught:
            await adm.acquire()
        assert caught.value.reason == "queue_timeout"
        assert caught.value.retry_after >= 1
        assert adm.queued == 0
        assert adm.in_flight == 1
        assert adm.rejected == {"queue_full": 0, "queue_timeout": 1}
        adm.release()
        assert adm.in_flight == 0
        await adm.acquire()  # the timed-out waiter left no trace
        assert adm.in_flight == 1

    run(main())


def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=10, queue_timeout=30.0)
        await adm.acquire()
        done: list[str] = []

        async def user(name: str) -> None:
            await adm.acquire()
            try:
                done.append(name)
            finally:
                adm.release()

        b = asyncio.create_task(user("b"))
        c = asyncio.create_task(user("c"))
        await spin()
        assert adm.queued == 2
        b.cancel()
        await spin()
        assert b.cancelled()
        assert adm.queued == 1  # the cancelled waiter left the queue
        adm.release()
        await c
        assert done == ["c"]
        assert adm.in_flight == 0 and adm.queued == 0

    run(main())


def test_waiter_cancelled_after_slot_was_handed_over_passes_it_on() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=1, queue_size=10, queue_timeout=30.0)
        await adm.acquire()
        done: list[str] = []

        async def user(name: str) -> None:
            await adm.acquire()
            try:
                done.append(name)
            finally:
                adm.release()

        b = asyncio.create_task(user("b"))
        c = asyncio.create_task(user("c"))
        await spin()
        adm.release()  # the slot is handed to b ...
        b.cancel()  # ... which is cancelled before it runs again
        await asyncio.gather(b, c, return_exceptions=True)
        assert "c" in done
        assert adm.in_flight == 0 and adm.queued == 0
        assert adm.rejected == {"queue_full": 0, "queue_timeout": 0}

    run(main())


def test_many_concurrent_users_end_with_nothing_in_flight() -> None:
    async def main() -> None:
        adm = Admission(max_concurrent=3, queue_size=50, queue_timeout=30.0)
        peak = 0
        gate = asyncio.Event()

        async def user() -> None:
            nonlocal peak
            await adm.acquire()
            try:
                peak = max(peak, adm.in_flight)
                await gate.wait()
            finally:
                adm.release()

        tasks = [asyncio.create_task(user()) for _ in range(40)]
        await spin()
        assert adm.in_flight == 3 and adm.queued == 37
        for task in tasks[10:20]:
            task.cancel()
        await spin()
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 10
        assert peak == 3
        assert adm.in_flight == 0 and adm.queued == 0

    run(main())
