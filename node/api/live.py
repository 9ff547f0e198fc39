"""`GET /ws`: a WebSocket of live control-state changes, for dashboards and operators.

Why a socket and not polling: every change is a Raft log entry applied on
every node, so any node can tell its clients about any change, in commit
order, the moment it is applied, with no extra load on the leader.

The caller is authenticated before the upgrade (a refused handshake is the
usual JSON error, 401 or 403), like the management API: `Authorization:
Bearer`, or, because browsers cannot set headers on a WebSocket, a `token`
query parameter or a `Sec-WebSocket-Protocol: bearer.<token>` entry (which is
echoed back, as browsers require). With no credential configured (loopback),
the caller is an anonymous admin, as on every other route. A browser's
handshake (it sends `Origin`) comes from the node's own pages or an origin in
`--cors-origins`, else 403 (node/cors.py: cross-site WebSocket hijacking).

Server -> client, JSON text:
    {"type": "hello", "node": "node-1", "applied_index": 41}
    {"type": "change", "index": 42, "op": "config.set", "at": 1.7e9, "by": "node-1/a",
     "ok": true, "object": {...redacted args}, "outcome": {...value or error},
     "redacted": ["worker.api_key"]}
    {"type": "reset", "index": 57}       # a snapshot was loaded: refetch state
    {"type": "pong"}
Client -> server: {"type": "ping"}; anything else closes the socket (1003).
A client too slow to keep up is closed with 1013 (reconnect and resync); on
node shutdown every client is closed with 1001.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import orjson
from aiohttp import WSMsgType, web

from node.api.common import node_of
from node.api.register import register
from node.api.table import Audience, Query, Route
from node.app import NODE, Node
from node.auth import presented_token, refuse_publication_key
from node.cors import websocket_origin_problem
from node.errors import ApiError
from node.live.feed import QUEUE_LIMIT, Client, Feed, StillValid, encode
from node.live.visibility import Viewer
from node.service import DONE, Periodic, cancel_and_wait

log = logging.getLogger(__name__)

FEED: Final = web.AppKey("live_feed", Feed)
PROTOCOL_PREFIX: Final = "bearer."
HEARTBEAT_SECS: Final = 20.0  # ping interval; no pong within half of it drops the client
CLOSE_TIMEOUT_SECS: Final = 5.0  # how long a closing handshake may take
SHUTDOWN_WAIT_SECS: Final = 10.0
REVALIDATE_SECS: Final = 30.0  # how often a connected credential is checked again (expiry)
MAX_CLIENT_MESSAGE: Final = 4096  # clients only ever send {"type": "ping"}
CLOSE_NORMAL: Final = 1000
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_INTERNAL: Final = 1011
PING_ONLY: Final = 'the only message accepted is {"type":"ping"}'


def install(app: web.Application, *, limit: int = QUEUE_LIMIT) -> None:
    """Add `GET /ws`, and the feed behind it (subscribed now, so it sees the journal replay
    and its `applied_index` is right from the first client on)."""
    node = app[NODE]
    feed = Feed(
        node.stream,
        node.name,
        key_tenant=lambda key_id: _key_tenant(node, key_id),
        limit=limit,
        applied_index=node.raft.state.applied_index,
    )
    feed.start()
    app[FEED] = feed
    register(app, ROUTES)
    app.on_shutdown.append(_close_clients)


def _key_tenant(node: Node, key_id: str) -> str | None:
    record = node.raft.state.api_keys.get(key_id)
    tenant = record.get("tenant") if isinstance(record, dict) else None
    return tenant if isinstance(tenant, str) else None


async def _close_clients(app: web.Application) -> None:
    await app[FEED].shutdown(SHUTDOWN_WAIT_SECS)


# -- the handshake ----------------------------------------------------------------------------


def credential(request: web.Request) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo). Header first, then `?token=`, then the subprotocol."""
    protocol = None
    for header in request.headers.getall("Sec-WebSocket-Protocol", ()):
        for offered in header.split(","):
            offered = offered.strip()
            if offered.startswith(PROTOCOL_PREFIX) and len(offered) > len(PROTOCOL_PREFIX):
                protocol = offered
                break
        if protocol:
            break
    token = presented_token(request) or request.query.get("token") or None
    if token is None and protocol is not None:
        token = protocol[len(PROTOCOL_PREFIX) :]
    return token, protocol


def viewer_for(node: Node, token: str | None) -> Viewer:
    """Who may watch, or the ApiError (401/403) that refuses the handshake."""
    if (anonymous := node.auth.open_door()) is not None:
        return Viewer.of(anonymous)
    principal = node.auth.identify(token) if token else None
    if principal is None:
        raise ApiError(
            401,
            "GET /ws needs a credential: send 'Authorization: Bearer <key or token>', "
            "a token query parameter, or the subprotocol bearer.<token>",
            headers={"WWW-Authenticate": 'Bearer realm="meshgate"'},
        )
    refuse_publication_key(principal, "/ws")
    viewer = Viewer.of(principal)
    if not viewer.admin and viewer.tenant is None:
        raise ApiError(
            403,
            f"{principal.kind.replace('_', ' ')} {principal.id!r} is neither an admin nor "
            "a tenant's user, so it may watch no changes",
        )
    return viewer


def still_valid(node: Node, token: str | None, viewer: Viewer) -> StillValid:
    """Would this credential still be let in as the same viewer? (Revoked, rotated and
    expired keys and tokens are not; a loopback node that gains its first key is not
    open any more.)"""

    def check() -> bool:
        try:
            return viewer_for(node, token) == viewer
        except ApiError:
            return False

    return check


async def websocket(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    feed = request.app[FEED]
    cross_site = websocket_origin_problem(request)
    if cross_site is not None:
        raise ApiError(403, cross_site, code="CROSS_SITE_WEBSOCKET")
    token, protocol = credential(request)
    viewer = viewer_for(node, token)
    if feed.closed:
        raise ApiError(503, "this node is shutting down; connect to another node")
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_SECS,
        protocols=(protocol,) if protocol else (),
        timeout=CLOSE_TIMEOUT_SECS,
        max_msg_size=MAX_CLIENT_MESSAGE,
        compress=False,  # small messages; keeps every frame write synchronous and ordered
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "GET /ws is a WebSocket endpoint: send a WebSocket upgrade request")
    await ws.prepare(request)
    await Session(request, ws, feed, viewer, still_valid(node, token, viewer)).run()
    return ws


# -- one connection ---------------------------------------------------------------------------


class Session:
    """One client connection: this task reads, a sender task writes from the client's queue.

    Every way of ending (the client leaves, sends garbage, falls behind, the node
    stops) goes through `Client.close`, which starts exactly one closer task: it
    stops the sender, then closes the socket with the code, within a deadline."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        feed: Feed,
        viewer: Viewer,
        valid: StillValid | None = None,
    ) -> None:
        self._request = request
        self._ws = ws
        self._feed = feed
        self._sender: asyncio.Task[None] | None = None
        # Tokens and keys expire with no log entry: the credential is checked again now and then.
        self._watcher = Periodic("ws-revalidate", self._revalidate, REVALIDATE_SECS)
        self._closer: asyncio.Task[None] | None = None
        self.client: Client = feed.attach(viewer, on_close=self._on_close, still_valid=valid)

    async def run(self) -> None:
        self._sender = asyncio.create_task(self._send(), name="ws-send")
        self._watcher.start()
        try:
            await self._receive()
        finally:
            self.client.close(CLOSE_NORMAL, "")  # a no-op when something closed it already
            assert self._closer is not None
            # Shielded: if this handler is cancelled, the closer still finishes (bounded by its
            # deadline), and the feed, which waits for it at shutdown, still knows of it.
            await asyncio.shield(self._closer)

    async def _receive(self) -> None:
        async for msg in self._ws:
            if msg.type is WSMsgType.TEXT:
                problem = self._handle(msg.data)
            elif msg.type is WSMsgType.BINARY:
                problem = f"binary messages are not accepted; {PING_ONLY}"
            else:  # an error: the connection is gone or broken
                return
            if problem:
                self.client.close(CLOSE_UNSUPPORTED, problem)
                return
            if self.client.closing is not None:
                return

    def _handle(self, text: str) -> str | None:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return f"messages must be JSON; {PING_ONLY}"
        if not isinstance(data, dict) or data.get("type") != "ping":
            return f"unknown message; {PING_ONLY}"
        self.client.offer(encode({"type": "pong"}))
        return None

    async def _send(self) -> None:
        try:
            while (text := await self.client.next()) is not None:
                await self._ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:  # the connection went away
            log.debug("WebSocket send failed: %s", exc)
            self.client.close(CLOSE_INTERNAL, "send failed")
        except Exception:
            log.exception("WebSocket sender failed")
            self.client.close(CLOSE_INTERNAL, "internal error")

    async def _revalidate(self) -> object:
        return None if self.client.revalidate() else DONE

    def _on_close(self, code: int, reason: str) -> None:
        if self._closer is None:
            self._closer = asyncio.create_task(self._close(code, reason), name="ws-close")
            self._closer.add_done_callback(self._closed)

    def _closed(self, closer: asyncio.Task[None]) -> None:
        self._feed.detach(self.client)
        if not closer.cancelled() and closer.exception() is not None:
            log.error("closing a WebSocket failed", exc_info=closer.exception())

    async def _close(self, code: int, reason: str) -> None:
        await self._watcher.stop()
        if self._sender is not None:  # it may be stuck writing to a client that does not read
            await cancel_and_wait([self._sender])
        transport = self._request.transport
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * CLOSE_TIMEOUT_SECS
        if not self._ws.closed:
            message = reason.encode()[:123]  # a close frame carries at most 123 bytes of reason
            try:
                async with asyncio.timeout_at(deadline):
                    # No drain: the close frame queues behind what is already buffered, and a
                    # client that reads gets both; one that does not is handled below.
                    await self._ws.close(code=code, message=message, drain=False)
            except TimeoutError:
                log.info("WebSocket client did not finish closing (%d %s)", code, reason)
        # Let a slow reader take the rest (the close frame included), then give up on it.
        while transport is not None and transport.get_write_buffer_size():
            if loop.time() >= deadline:
                transport.abort()  # a peer that stopped reading: drop what it will never read
                break
            await asyncio.sleep(0.05)


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/ws",
        websocket,
        Audience.WEBSOCKET,
        "liveChanges",
        "management",
        "A WebSocket of live control-state changes, in commit order",
        answers={101: {"description": "switching protocols: JSON text messages follow"}},
        errors=(400, 503),
        query=(Query("token", "a credential, for browsers (or subprotocol bearer.<token>)"),),
        description="400: not a WebSocket upgrade; 503: the node is shutting down.",
        checks_credentials=True,  # also from ?token= or the subprotocol, which browsers can set
    ),
)
