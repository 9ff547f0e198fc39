"""The processes of a node ask each other what they have applied, and for metrics, over
their Unix sockets; a missing or behind sibling is waited for no longer than the bound."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from mesh.events import AppliedStream
from node.applied_wait import AppliedWaiter
from node.metrics import Metrics
from node.plane.siblings import Siblings, get, process_socket, serve_siblings


def test_a_sibling_answers_what_it_has_applied_and_its_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        applied = [7]
        waiter = AppliedWaiter(lambda: (applied[0], applied[0]), stream)
        path = process_socket(tmp_path, "p2")
        site = await serve_siblings(Metrics("n1"), waiter, 0.3, path)
        me = Siblings(tmp_path, "p1")
        try:
            assert path.stat().st_mode & 0o777 == 0o600
            assert await get(path, "/applied/7", 2.0) == b"7"
            assert await get(path, "/applied/8", 2.0) is None  # not there within 0.3 s
            assert b"meshgate_" in (await get(path, "/metrics", 2.0) or b"")
            process_socket(tmp_path, "p3").touch()  # a sibling being restarted: no answer
            assert set(me.data_plane()) == {"p2", "p3"}
            started = time.monotonic()
            assert await me.caught_up(7, 0.3) == ["p3"]  # the one that did not confirm
            assert time.monotonic() - started < 1.0
            assert await me.caught_up(8, 0.3) == ["p2", "p3"]
            assert await me.clients.get(path, "/alive", 2.0) == b"ok"  # the supervisor's ping
        finally:
            await me.close()
            await site.cleanup()

    asyncio.run(scenario())
