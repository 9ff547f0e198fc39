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

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from node.api.table import Audience, Route
from node.applied_wait import AppliedWaiter
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
LOCAL_AUDIENCES: Final = frozenset({Audience.PROTECTED, Audience.PUBLISHED})


def served_here(route: Route) -> bool:
    """Does a data-plane process serve `route` itself (else its control process does)?"""
    if route.relayed or route.audience in LOCAL_AUDIENCES:
        return True
    return route.audience == Audience.PUBLIC and route.method == "GET"


def passed_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The headers that cross to the other side (every value of a repeated one)."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in NOT_PASSED:
            out.add(name, value)
    return out


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
    ) -> None:
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

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None, "started with the application"
        body = await request.read()  # bounded by the application's client_max_size
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
                status, answer_headers = answer.status, passed_headers(answer.headers)
        except aiohttp.ClientConnectorError:  # nothing was sent
            raise ApiError(
                503,
                "this node's control process is not reachable (it may be restarting); "
                "nothing was done: retry shortly",
                code="CONTROL_UNAVAILABLE",
                headers={"Retry-After": "1"},
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                503,
                f"this node's control process did not answer ({type(exc).__name__}): a write "
                "may or may not have been applied; retry with the same Idempotency-Key, or "
                "re-read first",
                code="CONTROL_UNAVAILABLE",
                headers={"Retry-After": "1"},
            ) from None
        await self._caught_up(answer_headers.get(INDEX_HEADER))
        answer_headers.popall(INDEX_HEADER, None)  # this process's own index is added
        return web.Response(status=status, body=payload, headers=answer_headers)

    async def _caught_up(self, index: str | None) -> None:
        """Wait (bounded) until this replica, and every other data-plane process's, has
        applied what the control process had when it answered."""
        if index is None or not index.isdigit() or len(index) > 18:
            return
        await self.applied.wait(int(index), self.wait_secs, capped=False)
        await self.siblings.caught_up(int(index), self.wait_secs)


@web.middleware
async def trusted_client(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """In the control process, on its Unix socket: the client is the one the data-plane
    process saw (CLIENT_HEADER), for rate limits, login throttling and the audit log."""
    client = request.headers.get(CLIENT_HEADER)
    if client is not None:
        request = request.clone(remote=client)
    return await handler(request)
