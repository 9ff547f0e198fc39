"""Read-your-writes across nodes, through two headers (docs/consistency.md).

- Every answer carries `X-Meshgate-Index`: the log index this node had applied
  when the answer was sent. For a write it is at least the write's own index,
  since a node answers a write once it has applied it.
- A request may carry `X-Meshgate-Min-Index: N` (an index an earlier answer
  gave): the node waits, at most `--min-index-wait-secs`, until it has applied
  N, and answers 503 with Retry-After if it has not by then. So a client that
  passes along the last index it saw reads its own writes on any node.

The wait comes before credentials are checked, so it is cheap and bounded: an
idle future in `AppliedWaiter`'s heap, at most `MAX_WAITERS` of them (1000); beyond
that a request is answered 503 at once. It does not answer early when the index
is far beyond this node's commit index: a follower's commit index may lag the
leader's by any amount (after a partition, say) and catch up within the wait.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.app import NODE
from node.applied_wait import AppliedWaiter, TooManyWaiters
from node.errors import ApiError
from node.index_names import INDEX_HEADER, MIN_INDEX_HEADER

MAX_DIGITS: Final = 18  # far beyond any log, and well inside an int64


def parse_min_index(values: list[str]) -> int | None:
    """The index a request asks this node to have applied, or None; a 400 if malformed."""
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(
            400, f"send {MIN_INDEX_HEADER} once (got {len(values)})", param=MIN_INDEX_HEADER
        )
    value = values[0].strip()
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS):
        shown = value if len(value) <= 40 else f"{value[:40]}…"
        raise ApiError(
            400,
            f"{MIN_INDEX_HEADER} must be a non-negative integer of at most {MAX_DIGITS} "
            f"digits (the {INDEX_HEADER} of an earlier answer), not {shown!r}",
            param=MIN_INDEX_HEADER,
        )
    return int(value)


@web.middleware
async def min_index(request: web.Request, handler: Any) -> web.StreamResponse:
    """Hold a request that names an index this node has not applied yet (bounded)."""
    wanted = parse_min_index(request.headers.getall(MIN_INDEX_HEADER, []))
    if wanted is not None:
        node = request.app[NODE]
        wait = node.config.min_index_wait_secs
        try:
            reached = await node.applied.wait(wanted, wait)
            waited = f"after waiting {wait:g} s"
        except TooManyWaiters as crowded:
            reached = False
            waited = f"and {crowded.limit} requests already wait for it to catch up"
        if not reached:
            applied = node.applied.applied()
            raise ApiError(
                503,
                f"this node has applied the log up to index {applied}, not yet up to the "
                f"{MIN_INDEX_HEADER} {wanted} you sent, {waited}; retry, here or on "
                "another node (an index no node has reached never will be)",
                code="BEHIND",
                headers={"Retry-After": "1"},
                extra={"applied_index": applied, "min_index": wanted},
            )
    return await handler(request)  # type: ignore[no-any-return]


def add_index(applied: AppliedWaiter, response: web.StreamResponse) -> None:
    """Every answer, streamed ones and errors too, tells the index (node/web.py calls it
    before each answer's headers go)."""
    response.headers[INDEX_HEADER] = str(applied.applied())
