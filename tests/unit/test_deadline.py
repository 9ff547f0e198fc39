"""One timer for a moving deadline: it fires once, at the time set last, or not at all."""

from __future__ import annotations

import asyncio

from node.deadline import Deadline


def test_a_deadline_fires_at_the_time_set_last_and_not_once_cleared() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        deadline = Deadline(loop, lambda: fired.append(loop.time()))
        start = loop.time()
        deadline.set(start + 0.05)
        deadline.set(start + 0.15)  # later: the first timer is kept, and set again on firing
        await asyncio.sleep(0.25)
        assert len(fired) == 1 and fired[0] >= start + 0.149
        deadline.set_after(0.2)
        deadline.set_after(0.02)  # earlier: a new timer
        await asyncio.sleep(0.1)
        assert len(fired) == 2
        deadline.set_after(0.02)
        deadline.clear()
        await asyncio.sleep(0.05)
        deadline.set_after(0.02)
        deadline.cancel()
        await asyncio.sleep(0.05)
        assert len(fired) == 2

    asyncio.run(main())
