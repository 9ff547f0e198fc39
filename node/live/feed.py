"""Fan-out of applied commands to WebSocket clients: one stream subscriber, a bounded queue each.

The node's `AppliedStream` calls subscribers synchronously on the event loop,
in commit order, for every node in the mesh alike (a change made on another
node arrives here the same way as one made on this node). A subscriber must
never block that loop, and one slow browser tab must never hold back the
others or grow memory without bound. So the feed subscribes once, turns each
applied command into one redacted JSON text (encoded once, whoever receives
it), and only appends it to each allowed client's queue; every client's own
task sends from its queue at the client's pace.

A client whose queue overflows is not silently skipped past (it would hold a
view with holes in it): it is closed with 1013 "try again later", so it
reconnects, refetches state and carries on from a fresh `hello`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import orjson

from mesh.commands import READ_OPS
from mesh.events import Applied, AppliedStream
from node.live.visibility import KeyTenant, Viewer, change_message, family, may_see

log = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 1000  # messages waiting for one client before it is dropped
CLOSE_TRY_AGAIN: Final = 1013  # RFC 6455 "try again later"
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008  # the credential was revoked, rotated or expired
# After these changes (and a reset) every client's credential is checked again at once:
# a revoked key must stop working everywhere as soon as the revoke is applied.
REVALIDATE_FAMILIES: Final = frozenset({"key", "publish", "tenant"})
CREDENTIAL_GONE: Final = "credential revoked, rotated or expired; reconnect with a valid one"

OnClose = Callable[[int, str], None]
StillValid = Callable[[], bool]


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message, default=str).decode()


class Client:
    """One connected client: what it may see, and the messages waiting for it.

    `close(code, reason)` marks it closing (once) and calls `on_close`, whose
    owner (the WebSocket session) stops sending and closes the socket."""

    def __init__(
        self,
        viewer: Viewer,
        limit: int,
        on_close: OnClose | None = None,
        still_valid: StillValid | None = None,
    ) -> None:
        self.viewer = viewer
        self.limit = limit
        self.still_valid = still_valid  # does the credential it connected with still work?
        self.closing: tuple[int, str] | None = None
        self.sent = 0  # messages handed to the sender
        self._items: deque[str] = deque()
        self._ready = asyncio.Event()
        self._on_close = on_close

    @property
    def pending(self) -> int:
        return len(self._items)

    def offer(self, text: str) -> bool:
        """Queue one message; on overflow close the client (1013) and return False."""
        if self.closing is not None:
            return False
        if len(self._items) >= self.limit:
            self.close(
                CLOSE_TRY_AGAIN,
                f"too slow: more than {self.limit} changes waiting; reconnect and resync",
            )
            return False
        self._items.append(text)
        self._ready.set()
        return True

    def revalidate(self) -> bool:
        """Close (1008) if the credential stopped working; True while it works."""
        if self.closing is not None:
            return False
        try:
            valid = self.still_valid is None or self.still_valid()
        except Exception:
            log.exception("live feed: re-checking a client's credential failed")
            valid = False
        if not valid:
            self.close(CLOSE_POLICY, CREDENTIAL_GONE)
        return valid

    def close(self, code: int, reason: str) -> None:
        """Stop this client: drop what is queued and tell the owner, once."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self._items.clear()
        self._ready.set()
        if self._on_close is not None:
            self._on_close(code, reason)

    async def next(self) -> str | None:
        """The next message to send, waiting for one; None once the client is closing."""
        while not self._items and self.closing is None:
            self._ready.clear()
            await self._ready.wait()
        if self.closing is not None:
            return None
        self.sent += 1
        return self._items.popleft()


class Feed:
    """The single `AppliedStream` subscriber that serves every WebSocket client of a node."""

    def __init__(
        self,
        stream: AppliedStream,
        node_name: str,
        key_tenant: KeyTenant,
        *,
        limit: int = QUEUE_LIMIT,
        applied_index: int = 0,
    ) -> None:
        self.stream = stream
        self.node_name = node_name
        self.key_tenant = key_tenant
        self.limit = limit
        # Index of the last applied command this feed has seen: a new client's `hello`
        # names it, and every change sent to that client after it comes later in the log.
        self.last_index = applied_index
        self.closed = False
        self._clients: set[Client] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def clients(self) -> int:
        return len(self._clients)

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.stream.subscribe(self.on_applied)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def attach(
        self,
        viewer: Viewer,
        on_close: OnClose | None = None,
        still_valid: StillValid | None = None,
    ) -> Client:
        """A new client whose queue starts with its `hello`."""
        if self.closed:
            raise RuntimeError("the live feed is closed")
        client = Client(viewer, self.limit, on_close, still_valid)
        client.offer(
            encode({"type": "hello", "node": self.node_name, "applied_index": self.last_index})
        )
        self._clients.add(client)
        self._idle.clear()
        return client

    def detach(self, client: Client) -> None:
        self._clients.discard(client)
        if not self._clients:
            self._idle.set()

    def on_applied(self, applied: Applied) -> None:
        """Stream subscriber: queue this change for every client allowed to see it."""
        self.last_index = applied.index
        command = applied.command
        op = command.get("op") if isinstance(command, dict) else None
        if op in READ_OPS:  # a read barrier changes nothing: nobody needs to hear of it
            return
        if command is None or family(op) in REVALIDATE_FAMILIES:
            for client in list(self._clients):
                client.revalidate()
        text: str | None = None
        for client in list(self._clients):
            if client.closing is not None:
                continue
            try:
                allowed = may_see(client.viewer, applied, self.key_tenant)
            except Exception:  # an unexpected entry: deny, and keep serving the others
                log.exception("live feed: visibility of change %s failed", applied.index)
                continue
            if not allowed:
                continue
            if text is None:
                try:
                    text = encode(change_message(applied))
                except Exception:  # never let one bad entry stop the feed; show it to nobody
                    log.exception("live feed could not encode change %s", applied.index)
                    return
            client.offer(text)

    def close_all(self, code: int, reason: str) -> None:
        for client in list(self._clients):
            client.close(code, reason)

    async def shutdown(self, timeout: float) -> None:
        """Refuse new clients, close every client (1001), and wait up to `timeout` for
        their sessions to end."""
        self.closed = True
        self.stop()
        self.close_all(CLOSE_GOING_AWAY, "node shutting down; reconnect to another node")
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d WebSocket client(s) still open at shutdown", len(self._clients))
