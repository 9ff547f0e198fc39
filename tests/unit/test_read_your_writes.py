"""Read-your-writes parts: the headers' parsing, the applied wait, and shared barriers.

pytest-asyncio is not installed: each async test runs on its own loop (`run`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mesh.commands import Command, Outcome, ok
from mesh.events import Applied, AppliedStream
from mesh.raft import CommitError
from node import applied_wait
from node.api.current import consistent_asked
from node.app import NODE
from node.applied_wait import MAX_WAITERS, AppliedWaiter, TooManyWaiters
from node.errors import ApiError
from node.index_headers import MIN_INDEX_HEADER, min_index, parse_min_index
from node.read_index import ReadIndex


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    def on_its_own_loop() -> None:
        asyncio.run(test())

    on_its_own_loop.__name__ = test.__name__
    return on_its_own_loop


@pytest.mark.parametrize(("values", "wanted"), [([], None), (["0"], 0), ([" 42 "], 42)])
def test_a_min_index_is_a_non_negative_integer(values: list[str], wanted: int | None) -> None:
    assert parse_min_index(values) == wanted


@pytest.mark.parametrize(
    "values", [["-1"], ["abc"], ["1.5"], ["1" * 19], ["0x1"], [""], ["١٢"], ["1", "2"]]
)
def test_a_malformed_min_index_is_a_400_naming_the_header(values: list[str]) -> None:
    with pytest.raises(ApiError) as caught:
        parse_min_index(values)
    assert caught.value.status == 400 and caught.value.param == MIN_INDEX_HEADER
    assert MIN_INDEX_HEADER in caught.value.message


@pytest.mark.parametrize(
    ("query", "asked"), [("", False), ("?consistent=true", True), ("?consistent=FALSE", False)]
)
def test_consistent_is_true_or_false(query: str, asked: bool) -> None:
    assert consistent_asked(make_mocked_request("GET", "/ha/config" + query)) is asked


@pytest.mark.parametrize("query", ["?consistent=yes", "?consistent=", "?consistent=1&consistent=1"])
def test_any_other_consistent_is_a_400(query: str) -> None:
    with pytest.raises(ApiError) as caught:
        consistent_asked(make_mocked_request("GET", "/ha/config" + query))
    assert caught.value.status == 400 and caught.value.param == "consistent"


class Indexes:
    def __init__(self) -> None:
        self.applied = 5
        self.calls = 0  # each is one look at the applied index: the work a wake-up does

    def __call__(self) -> tuple[int, int]:
        self.calls += 1
        return self.applied, self.applied


@run
async def test_a_waiter_wakes_when_the_index_is_applied() -> None:
    stream, indexes = AppliedStream(), Indexes()
    stream.bind(asyncio.get_running_loop())
    waiter = AppliedWaiter(indexes, stream)
    assert await waiter.wait(5, 0)  # already there: no wait at all
    waiting = asyncio.ensure_future(waiter.wait(7, 5.0))
    await asyncio.sleep(0)
    indexes.applied = 7
    stream.publish(Applied(7, {"op": "x"}, None))
    assert await asyncio.wait_for(waiting, 1.0)


@run
async def test_a_waiter_gives_up_at_its_deadline() -> None:
    loop = asyncio.get_running_loop()
    waiter = AppliedWaiter(Indexes(), AppliedStream())
    started = loop.time()
    assert not await waiter.wait(6, 0.2)
    assert 0.2 <= loop.time() - started < 1.0


@run
async def test_a_no_op_entry_is_seen_without_a_command() -> None:
    indexes = Indexes()
    waiter = AppliedWaiter(indexes, AppliedStream())  # nothing is ever published
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, setattr, indexes, "applied", 9)
    assert await waiter.wait(9, 2.0)


def test_an_apply_that_reaches_no_waiter_costs_one_look_however_many_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(applied_wait, "RECHECK_SECS", 3600.0)  # the shared timer stays out

    async def test() -> None:
        stream, indexes = AppliedStream(), Indexes()
        stream.bind(asyncio.get_running_loop())
        waiter = AppliedWaiter(indexes, stream, limit=10_000)
        far = [asyncio.ensure_future(waiter.wait(10**6, 60.0)) for _ in range(5000)]
        near = asyncio.ensure_future(waiter.wait(200, 60.0))
        await asyncio.sleep(0)
        assert waiter.waiting == 5001
        before = indexes.calls
        for index in range(6, 106):  # 100 applies, none reaching any waiter
            indexes.applied = index
            stream.publish(Applied(index, {"op": "x"}, None))
        for _ in range(10):  # loop turns enough for any woken waiter to run and look
            await asyncio.sleep(0)
        assert indexes.calls - before == 100  # one look per apply, not one per waiter
        assert waiter.waiting == 5001 and not any(t.done() for t in [*far, near])
        before = indexes.calls
        indexes.applied = 200
        stream.publish(Applied(200, {"op": "x"}, None))
        assert await asyncio.wait_for(near, 1.0)
        assert indexes.calls - before == 1 and waiter.waiting == 5000  # only it woke
        for task in far:
            task.cancel()
        await asyncio.gather(*far, return_exceptions=True)
        assert waiter.waiting == 0

    asyncio.run(test())


@run
async def test_waiters_are_woken_in_index_order() -> None:
    stream, indexes = AppliedStream(), Indexes()
    stream.bind(asyncio.get_running_loop())
    waiter = AppliedWaiter(indexes, stream)
    woken: list[int] = []

    async def wait(index: int) -> None:
        assert await waiter.wait(index, 5.0)
        woken.append(index)

    tasks = [asyncio.ensure_future(wait(i)) for i in (9, 7, 8, 6, 7)]
    await asyncio.sleep(0)
    indexes.applied = 8
    stream.publish(Applied(8, {"op": "x"}, None))
    await asyncio.sleep(0.01)
    assert woken == [6, 7, 7, 8] and waiter.waiting == 1
    indexes.applied = 9
    stream.publish(Applied(9, {"op": "x"}, None))
    await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
    assert woken == [6, 7, 7, 8, 9] and waiter.waiting == 0


@run
async def test_a_cancelled_waiter_is_removed() -> None:
    stream, indexes = AppliedStream(), Indexes()
    stream.bind(asyncio.get_running_loop())
    waiter = AppliedWaiter(indexes, stream, limit=1)
    task = asyncio.ensure_future(waiter.wait(10**6, 60.0))
    await asyncio.sleep(0)
    assert waiter.waiting == 1
    task.cancel()  # what aiohttp does when the client goes away (handler_cancellation)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waiter.waiting == 0 and waiter._heap == []  # nothing left behind
    # Its place under the cap is free again, and a timed-out waiter leaves too.
    assert not await waiter.wait(10**6, 0.05)
    assert waiter.waiting == 0 and waiter._heap == []


@run
async def test_dead_waiters_do_not_pile_up_in_the_heap() -> None:
    waiter = AppliedWaiter(Indexes(), AppliedStream(), limit=10_000)
    keep = asyncio.ensure_future(waiter.wait(10, 60.0))
    gone = [asyncio.ensure_future(waiter.wait(10**6, 60.0)) for _ in range(1000)]
    await asyncio.sleep(0)
    for task in gone:
        task.cancel()
    await asyncio.gather(*gone, return_exceptions=True)
    assert waiter.waiting == 1 and len(waiter._heap) <= 2
    keep.cancel()
    await asyncio.gather(keep, return_exceptions=True)
    assert waiter.waiting == 0 and waiter._heap == []


@run
async def test_capped_waits_beyond_the_limit_are_refused_at_once() -> None:
    waiter = AppliedWaiter(Indexes(), AppliedStream(), limit=3)
    held = [asyncio.ensure_future(waiter.wait(10**6, 60.0)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(TooManyWaiters):
        await waiter.wait(10**6, 60.0)
    assert await waiter.wait(5, 60.0)  # already applied: no wait, so no place needed
    guarded = asyncio.ensure_future(waiter.wait(10**6, 60.0, capped=False))
    await asyncio.sleep(0)
    assert not guarded.done() and waiter.waiting == 4  # a guarded caller is not refused
    for task in [*held, guarded]:
        task.cancel()
    await asyncio.gather(*held, guarded, return_exceptions=True)
    assert waiter.waiting == 0


def min_index_request(waiter: AppliedWaiter, wanted: int) -> web.Request:
    node = SimpleNamespace(config=SimpleNamespace(min_index_wait_secs=60.0), applied=waiter)
    app = web.Application()
    app[NODE] = node  # type: ignore[misc]
    return make_mocked_request("GET", "/ha/config", {MIN_INDEX_HEADER: str(wanted)}, app=app)


def test_a_node_holds_at_most_max_waiters_min_index_waits() -> None:
    assert AppliedWaiter(Indexes(), AppliedStream()).limit == MAX_WAITERS == 1000


@run
async def test_min_index_beyond_the_cap_is_a_503_behind_at_once() -> None:
    waiter = AppliedWaiter(Indexes(), AppliedStream(), limit=3)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text="answered")

    held = [
        asyncio.ensure_future(min_index(min_index_request(waiter, 10**6), handler))
        for _ in range(3)
    ]
    await asyncio.sleep(0)
    assert waiter.waiting == 3
    with pytest.raises(ApiError) as caught:
        await asyncio.wait_for(min_index(min_index_request(waiter, 10**6), handler), 1.0)
    error = caught.value
    assert error.status == 503 and error.code == "BEHIND"
    assert error.headers["Retry-After"] == "1"
    assert error.extra == {"applied_index": 5, "min_index": 10**6}
    assert "3 requests already wait for it to catch up" in error.message
    assert MIN_INDEX_HEADER in error.message
    answered = await min_index(min_index_request(waiter, 5), handler)  # no wait: served
    assert isinstance(answered, web.Response) and answered.text == "answered"
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert waiter.waiting == 0


class FakeRaft:
    """A follower (no lease) whose barriers commit when the test says so."""

    def __init__(self) -> None:
        self.submitted: list[Command] = []
        self.gate = asyncio.Event()
        self.error: CommitError | None = None

    def leader_read_index(self) -> int | None:
        return None

    def status(self) -> Any:
        return type("Status", (), {"cut_off": False})()

    async def submit(self, command: Command, timeout: float | None = None) -> Outcome:
        self.submitted.append(command)
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return ok()


def read_index(raft: FakeRaft) -> ReadIndex:
    return ReadIndex(raft, AppliedWaiter(Indexes(), AppliedStream()), 1.0, "n1/node")  # type: ignore[arg-type]


@run
async def test_callers_share_the_next_barrier_never_one_already_sent() -> None:
    raft = FakeRaft()
    reads = read_index(raft)
    first = asyncio.ensure_future(reads.current())
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(reads.current()) for _ in range(5)]
    await asyncio.sleep(0)
    assert len(raft.submitted) == 1  # the later callers wait for the one after it
    raft.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 1.0)
    assert [c["op"] for c in raft.submitted] == ["read.barrier", "read.barrier"]
    await asyncio.wait_for(reads.current(), 1.0)  # and then a new one at once
    assert len(raft.submitted) == 3


@run
async def test_a_barrier_that_fails_is_a_503_with_retry_after() -> None:
    raft = FakeRaft()
    raft.error = CommitError("no_leader", "no leader is known", 2.0)
    raft.gate.set()
    with pytest.raises(ApiError) as caught:
        await read_index(raft).current()
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "2"
    assert caught.value.extra["outcome"] == "not_committed"
