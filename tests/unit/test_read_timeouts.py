"""The header/idle deadline of a connection: one timer, moved only when it would fire late."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.read_timeouts import GuardedRequestHandler, GuardedServer, ReadTimeouts


async def _handler(request: web.BaseRequest) -> web.Response:
    return web.Response()


class _Probe(GuardedRequestHandler):
    """Records when the header deadline fires instead of closing a connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fired: list[float] = []  # seconds after the probe was made
        self.started = self._loop.time()

    def _headers_overdue(self) -> None:
        self.fired.append(self._loop.time() - self.started)


def _run(scenario: Any) -> list[float]:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        timeouts = ReadTimeouts(headers=0.05, body=1.0, idle=30.0)
        probe = _Probe(
            GuardedServer(_handler, loop=loop, timeouts=timeouts), loop=loop, timeouts=timeouts
        )
        await scenario(probe)
        return probe.fired

    return asyncio.run(main())


def test_a_shorter_deadline_after_a_longer_one_fires_on_time() -> None:
    async def scenario(probe: _Probe) -> None:
        probe._arm_headers(30.0)  # idle on a kept-alive connection
        probe._disarm_headers()  # the first byte of a new request: the header deadline
        probe._arm_headers()
        while not probe.fired:
            await asyncio.sleep(0.01)

    fired = _run(scenario)
    assert len(fired) == 1 and 0.05 <= fired[0] < 30.0


def test_a_deadline_moved_later_fires_at_the_new_time_and_once() -> None:
    async def scenario(probe: _Probe) -> None:
        probe._arm_headers()
        await asyncio.sleep(0.03)
        probe._disarm_headers()  # a request came and went; the next one starts
        probe._arm_headers()  # due 0.05 s from now (0.08 s or later), later than the timer
        while not probe.fired:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    fired = _run(scenario)
    assert len(fired) == 1 and fired[0] >= 0.08 - 0.002


def test_a_disarmed_deadline_never_fires() -> None:
    async def scenario(probe: _Probe) -> None:
        probe._arm_headers()
        probe._disarm_headers()
        await asyncio.sleep(0.1)

    assert _run(scenario) == []
