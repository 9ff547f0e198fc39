"""Read-your-writes parts: the headers' parsing, the applied wait, and shared barriers.

pytest-asyncio is not installed: each async test runs on its own loop (`run`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from mesh.commands import Command, Outcome, ok
from mesh.events import Applied, AppliedStream
from mesh.raft import CommitError
from node.api.current import consistent_asked
from node.applied_wait import AppliedWaiter
from node.errors import ApiError
from node.index_headers import MIN_INDEX_HEADER, parse_min_index
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

    def __call__(self) -> tuple[int, int]:
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
