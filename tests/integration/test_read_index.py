"""Raft's ReadIndex on a 3-member group in this process (`MeshRaft.leader_read_index`,
node/read_index.py): a leader reads on its lease, a follower through a barrier; and an
X-Meshgate-Min-Index wait over a real connection ends when its client hangs up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.events import AppliedStream
from node.app import NODE
from node.applied_wait import AppliedWaiter
from node.index_headers import min_index
from node.index_names import MIN_INDEX_HEADER
from node.read_index import ReadIndex
from tests.integration.test_stale_commands import Group
from tests.support import wait_for

pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed file.*raft.journal.meta:ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)


def test_a_leader_reads_on_its_lease_and_a_follower_through_a_barrier(tmp_path: Path) -> None:
    group = Group(tmp_path)
    try:
        leader, follower = group.leader.raft, group.follower.raft
        assert group.write(group.leader, "k", 1)["ok"]
        index = wait_for(leader.leader_read_index, what="the leader's lease")
        assert index == leader.indexes()[0]
        assert follower.leader_read_index() is None
        # Heartbeats every 50 ms keep a 150 ms lease, judged on one clock (pysyncobj
        # stamps answers with CLOCK_MONOTONIC_RAW, not time.monotonic()).
        held = 0
        for _ in range(50):
            held += leader.leader_read_index() is not None
            time.sleep(0.01)
        assert held >= 25, f"the lease held in {held} of 50 samples"

        assert group.write(group.leader, "k", 2)["ok"]
        before = follower.indexes()[1]
        reads = ReadIndex(follower, AppliedWaiter(follower.indexes, follower.stream), 2.0, "t")
        group.run(reads.current())
        # The barrier came after the write: the follower has applied both.
        assert follower.state.config["k"]["value"] == 2
        assert follower.indexes()[1] >= max(before + 1, leader.indexes()[1] - 1)
    finally:
        group.stop()


def test_a_min_index_wait_ends_when_its_client_goes_away() -> None:
    """The node serves with handler_cancellation (node/serve.py): a client that hangs up
    cancels its X-Meshgate-Min-Index wait, which leaves the waiters at once."""

    async def test() -> None:
        waiter = AppliedWaiter(lambda: (5, 5), AppliedStream())
        app = web.Application(middlewares=[min_index])
        app[NODE] = SimpleNamespace(  # type: ignore[misc]
            config=SimpleNamespace(min_index_wait_secs=60.0), applied=waiter
        )
        server = TestServer(app)  # handler_cancellation=True, as in node/serve.py
        await server.start_server()
        try:
            loop = asyncio.get_running_loop()
            _, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                f"GET /x HTTP/1.1\r\nHost: t\r\n{MIN_INDEX_HEADER}: {10**6}\r\n\r\n".encode()
            )
            await writer.drain()
            deadline = loop.time() + 5.0
            while waiter.waiting != 1 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert waiter.waiting == 1
            writer.close()
            await writer.wait_closed()
            deadline = loop.time() + 5.0
            while waiter.waiting != 0 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert waiter.waiting == 0 and waiter._heap == []  # no leak
        finally:
            await server.close()

    asyncio.run(test())
