"""The processes of a node ask each other what they have applied, and for metrics, over
their Unix sockets; a missing or behind sibling is waited for no longer than the bound."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import orjson
from yarl import URL

from mesh.events import AppliedStream
from node.applied_wait import AppliedWaiter
from node.metrics import Metrics
from node.plane.node_limits import node_rate_stats
from node.plane.siblings import (
    ALIVE_SECS,
    PROBE_AFTER,
    Siblings,
    get,
    process_socket,
    serve_siblings,
)


async def traffic_status(path: Path, minutes: str) -> int:
    """The status of a sibling's `GET /traffic?minutes=...` (`minutes` as sent, encoded)."""
    connector = aiohttp.UnixConnector(path=str(path))
    async with aiohttp.ClientSession(connector=connector) as session:
        url = URL(f"http://localhost/traffic?minutes={minutes}", encoded=True)
        async with session.get(url) as resp:
            return resp.status


COUNTERS = {"rate_limits": {"scopes": {"*": {"admitted": 4, "rejected": 1}}}}


def test_a_sibling_answers_what_it_has_applied_and_its_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        applied = [7]
        waiter = AppliedWaiter(lambda: (applied[0], applied[0]), stream)
        path = process_socket(tmp_path, "p2")
        site = await serve_siblings(
            Metrics("n1"), waiter, 0.3, path, lambda: COUNTERS, lambda at, part: {"at": at, **part}
        )
        me = Siblings(tmp_path, "p1")
        try:
            assert path.stat().st_mode & 0o777 == 0o600
            assert await get(path, "/applied/7", 2.0) == b"7"
            assert await get(path, "/applied/8", 2.0) is None  # not there within 0.3 s
            assert b"meshgate_" in (await get(path, "/metrics", 2.0) or b"")
            assert orjson.loads(await get(path, "/limits", 2.0) or b"") == COUNTERS
            assert await traffic_status(path, "1") == 200
            for bad in ("%C2%B2", "%E2%91%A0", "%EF%BC%95", "%D9%A3", "0", "31", "x"):
                assert await traffic_status(path, bad) == 400, bad  # never a 500, never read
            sent = orjson.dumps({"sent_at": 5, "part": {"grants": {}}})
            answer = await me.clients.post(path, "/shares", sent, 2.0)
            assert orjson.loads(answer or b"") == {"at": 5.0, "grants": {}}
            for bad in (b"[]", b"{", orjson.dumps({"sent_at": "5", "part": {}})):
                assert await me.clients.post(path, "/shares", bad, 2.0) is None  # a 400
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


def test_a_sibling_that_answers_no_ping_is_waited_for_no_longer_than_the_ping(
    tmp_path: Path,
) -> None:
    """A stopped process: its socket accepts (the kernel's backlog) and answers nothing.
    A live sibling that is behind answers the ping, and is waited for the whole bound."""

    async def scenario() -> None:
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        waiter = AppliedWaiter(lambda: (7, 7), stream)
        behind = await serve_siblings(
            Metrics("n1"), waiter, 1.0, process_socket(tmp_path, "p2"), dict, lambda *_: {}
        )
        stopped = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stopped.bind(str(process_socket(tmp_path, "p3")))
        stopped.listen(16)
        me = Siblings(tmp_path, "p1")
        try:
            started = time.monotonic()
            assert await me.caught_up(8, 1.0) == ["p2", "p3"]
            took = time.monotonic() - started
            assert took >= 1.0  # p2 answers its ping: waited for the whole bound
            waiter = AppliedWaiter(lambda: (8, 8), stream)  # p2 caught up meanwhile
            await behind.cleanup()
            behind = await serve_siblings(
                Metrics("n1"), waiter, 1.0, process_socket(tmp_path, "p2"), dict, lambda *_: {}
            )
            started = time.monotonic()
            assert await me.caught_up(8, 30.0) == ["p3"]
            took = time.monotonic() - started
            assert took < ALIVE_SECS + 0.4, took  # p3 missed a ping before: pinged at once
            assert me.unresponsive == {"p3"}
            fresh = Siblings(tmp_path, "p1")
            started = time.monotonic()
            assert await fresh.caught_up(8, 30.0) == ["p3"]
            took = time.monotonic() - started
            assert PROBE_AFTER <= took < PROBE_AFTER + ALIVE_SECS + 0.4, took
            await fresh.close()
        finally:
            stopped.close()
            await me.close()
            await behind.cleanup()

    asyncio.run(scenario())


def test_the_node_counts_every_process_and_names_those_that_did_not_answer() -> None:
    own = {
        "node": "n1",
        "backend": "local",
        "nodes": 3,
        "scopes": {
            "*": {"rate": 9.0, "burst": 9.0, "admitted": 0, "rejected": 0},
            "m": {"rate": 3.0, "burst": 3.0, "admitted": 0, "rejected": 0},
        },
    }
    p1 = {"scopes": {"*": {"admitted": 4, "rejected": 1}, "gone": {"admitted": 9}}}
    p2 = {"scopes": {"*": {"admitted": 2, "rejected": "x"}, "m": {"admitted": 5, "rejected": 0}}}
    stats = node_rate_stats(own, {"p1": p1, "p2": p2, "p3": None})
    assert stats["scopes"]["*"] == {
        "rate": 9.0,
        "burst": 9.0,
        "admitted": 6,
        "rejected": 1,  # a count that is not one counts 0
        "by_process": {"p1": {"admitted": 4, "rejected": 1}, "p2": {"admitted": 2, "rejected": 0}},
    }
    assert stats["scopes"]["m"]["admitted"] == 5
    assert "gone" not in stats["scopes"]  # a rule removed since: not the node's any more
    assert stats["processes"] == ["p1", "p2"]
    assert stats["missing_processes"] == ["p3"]
    assert own["scopes"]["*"]["admitted"] == 0  # the control process's own are left as they are
