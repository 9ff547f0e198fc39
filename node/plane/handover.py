"""In a data-plane process: what it serves itself, and how it hands the rest to its
control process.

Served here, from this process's replica: inference (and what is relayed to a
worker), tokenize/detokenize and parsing, published models, the public reads (probes,
`/metrics`, `/v1/models`, `/openapi.json`) and the `/ws` feed (this replica's applied
stream). Everything else (every write of control state, `/ha/*`, `/admin/*`, `/api/*`,
`/wasm`, the tokenizer registry, login) goes to the control process's Unix-socket
HTTP site with its method, path, headers and body, and its answer comes back once
this process's replica, and every sibling's (node/plane/siblings.py), has applied the
index in the answer's X-Meshgate-Index: a client reads its own write from any process
of the node, on any connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Final, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from node.api.common import bounded_body
from node.api.table import INFERENCE_AUDIENCES, Audience, Route
from node.applied_wait import AppliedWaiter
from node.digits import ascii_int
from node.errors import ApiError
from node.index_names import INDEX_HEADER
from node.plane.siblings import Siblings

# The client's address as the data-plane process saw it: the control process trusts it
# on its Unix socket alone (mode 0600: only this node's user can connect).
CLIENT_HEADER: Final = "X-Meshgate-Client"
# Hop-by-hop headers (RFC 9110 7.6.1) and the length aiohttp sets for the new message; Host
# crosses (the browser guard reads it).
NOT_PASSED: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        CLIENT_HEADER.lower(),
    }
)
CONNECT_SECS: Final = 5.0
# The data-plane processes of the node that did not confirm, in time, that they had
# applied a handed-over request's index (docs/consistency.md).
BEHIND_HEADER: Final = "X-Meshgate-Siblings-Behind"
# Past the mesh's commit timeout (and the 1 s more of an unknown outcome), for the control
# process to answer a handed-over request.
ANSWER_MARGIN: Final = 5.0


def served_here(route: Route) -> bool:
    """Does a data-plane process serve `route` itself (else its control process does)?"""
    if route.relayed or route.audience in INFERENCE_AUDIENCES:
        return True
    return route.audience == Audience.PUBLIC and route.method == "GET"


def passed_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The headers that cross to the other side (every value of a repeated one)."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in NOT_PASSED:
            out.add(name, value)
    return out


class Link(Protocol):
    """The plane link as the hand-over watches it (data_side.PlaneReplica)."""

    @property
    def linked(self) -> bool: ...

    def wait_down(self) -> Awaitable[None]: ...


def answer_bound(commit_timeout_secs: float, fetch_timeout_secs: float) -> float:
    """The longest a handed-over request waits for the control process's answer: a
    registration may first fetch its source (a tokenizer's URL), then commit. A control
    process that hangs is noticed sooner, by its silent link."""
    return fetch_timeout_secs + commit_timeout_secs + 1.0 + ANSWER_MARGIN


def _unanswered(why: str) -> ApiError:
    return ApiError(
        504,
        f"this node's control process did not answer ({why}); the request was sent to it: "
        "a write may or may not have been applied. Retry with the same Idempotency-Key, or "
        "re-read first",
        code="CONTROL_UNAVAILABLE",
        headers={"Retry-After": "1"},
        extra={"sent": True},
    )


class Handover:
    """Hands requests to the control process at `socket_path` (an HTTP site on a Unix
    socket), and answers once `applied` has reached the index of its answer."""

    def __init__(
        self,
        socket_path: Path,
        applied: AppliedWaiter,
        siblings: Siblings,
        wait_secs: float,
        timeout_secs: float,
        link: Link,
    ) -> None:
        self.link = link  # a request is not handed over while it is down, nor waits past it
        self.socket_path = socket_path
        self.applied = applied
        self.siblings = siblings
        self.wait_secs = wait_secs
        self.timeout_secs = timeout_secs  # the whole exchange with the control process
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(self.socket_path)),
            timeout=aiohttp.ClientTimeout(total=self.timeout_secs, connect=CONNECT_SECS),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.siblings.close()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if not self.link.linked:
            raise _unreachable("it does not answer on the plane link")
        body = await bounded_body(request)  # every control route's bound: 413 past it
        exchange = asyncio.ensure_future(self._exchange(request, body))
        down = asyncio.ensure_future(self.link.wait_down())
        try:
            await asyncio.wait({exchange, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
            answered = exchange.done()
            exchange.cancel()  # the link went down (a frozen or dead control process)
        if not answered:
            raise _unanswered("the plane link went down while it had the request")
        status, payload, answer_headers = exchange.result()
        behind = await self._caught_up(answer_headers.get(INDEX_HEADER))
        answer_headers.popall(INDEX_HEADER, None)  # this process's own index is added
        if behind:  # a read through one of these may not show this answer's write yet
            answer_headers[BEHIND_HEADER] = ",".join(behind)
        return web.Response(status=status, body=payload, headers=answer_headers)

    async def _exchange(
        self, request: web.Request, body: bytes
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        """Send `request` to the control process; its status, body and headers."""
        assert self._session is not None, "started with the application"
        headers = passed_headers(request.headers)
        headers[CLIENT_HEADER] = request.remote or ""
        try:
            async with self._session.request(
                request.method,
                f"http://localhost{request.rel_url}",
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                return answer.status, payload, passed_headers(answer.headers)
        except aiohttp.ClientConnectorError:  # nothing was sent
            raise _unreachable("it may be restarting") from None
        except TimeoutError:
            raise _unanswered(f"within {self.timeout_secs:g} s") from None
        except aiohttp.ClientError as exc:
            raise _unanswered(type(exc).__name__) from None

    async def _caught_up(self, index: str | None) -> list[str]:
        """Wait (bounded) until this replica, and every other data-plane process's, has
        applied what the control process had when it answered; the siblings that did not
        confirm it in time."""
        reached = ascii_int(index)
        if reached is None:
            return []
        await self.applied.wait(reached, self.wait_secs, capped=False)
        return await self.siblings.caught_up(reached, self.wait_secs)


def _unreachable(why: str) -> ApiError:
    return ApiError(
        503,
        f"this node's control process is not reachable ({why}); the request was not sent: "
        "nothing was done, retry shortly",
        code="CONTROL_UNAVAILABLE",
        headers={"Retry-After": "1"},
        extra={"sent": False},
    )


@web.middleware
async def trusted_client(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """In the control process, on its Unix socket: the client is the one the data-plane
    process saw (CLIENT_HEADER), for rate limits, login throttling and the audit log."""
    client = request.headers.get(CLIENT_HEADER)
    if client is not None:
        request = request.clone(remote=client)
    return await handler(request)
