"""The usage book's flush: a batch whose outcome is unknown is sent again under the same
request id (so a batch that did land is not counted twice), never merged into the next."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from node.errors import ApiError
from node.limits.usage import UsageBook


class Log:
    def __init__(self, *failures: ApiError) -> None:
        self.failures = list(failures)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, args: dict[str, Any], rid: str) -> Any:
        self.sent.append((rid, args["deltas"]))
        if self.failures:
            raise self.failures.pop(0)
        return {"version": len(self.sent)}


def unknown() -> ApiError:
    return ApiError(504, "may or may not", extra={"outcome": "unknown", "request_id": "x"})


def test_an_unknown_batch_is_resent_as_it_was_and_later_counts_go_next() -> None:
    log = Log(unknown())
    book = UsageBook(log)

    async def run() -> None:
        book.record(["key:a"], 5)
        await book.flush()  # unknown: kept as it is
        book.record(["key:a"], 7)  # counted meanwhile: the next batch
        await book.flush()

    asyncio.run(run())
    (rid1, first), (rid2, again), (rid3, later) = log.sent
    assert rid1 == rid2 and first == again and first["key:a"]["tokens"] == 5
    assert rid3 != rid1 and later["key:a"]["tokens"] == 7


@pytest.mark.parametrize(
    "refused",
    [
        ApiError(400, "bad", extra={"outcome": "rejected", "request_id": "x"}),  # in the log
        ApiError(400, "bad", code="INVALID"),  # by the command's rules, before the log
    ],
)
def test_a_refused_batch_is_dropped(refused: ApiError) -> None:
    log = Log(refused)
    book = UsageBook(log)

    async def run() -> None:
        book.record(["key:a"], 1)
        await book.flush()
        await book.flush()

    asyncio.run(run())
    assert len(log.sent) == 1 and book.pending("key:a")["requests"] == 0
