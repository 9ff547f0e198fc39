"""meshgate's Raft transport: pysyncobj's TCP transport with our own server and connections.

`SyncObj(..., transportClass=MeshTransport)` is pysyncobj's seam for this.
`TCPTransport` keeps doing what it does well (which node dials which, the
key exchange, utility messages, read-only members, reconnection, membership
changes); the sockets are ours:

- `MeshConnection` (mesh/connection.py) caps frames before buffering them,
  reads into a linear buffer, inflates and unpickles with limits, and gives
  a connection `handshake_timeout` seconds to prove it holds the secret;
- `MeshServer` holds at most `per_address` unauthenticated connections per
  peer address and `total` overall: at accept, the excess is closed at once
  (the oldest connection that has sent nothing sealed with the secret), and
  it never gives up listening (pysyncobj's server unbound itself for good on
  an accept error such as EMFILE, which a flood can cause);
- `MeshTransport` refuses to exist without the mesh secret, closes
  connections whose handshake is overdue on every tick, and counts every
  refusal (`refusals`);
- on every tick each link pings when idle and is closed when silent
  (`MeshConnection.keep_alive`, timings in `Liveness`), so a pulled cable is
  noticed in about a second; a peer that dials again replaces its old link,
  which is then closed (pysyncobj left it open and unwatched);
- `stamp` may rewrite each outgoing message (mesh/raft.py marks the vote
  requests of a leadership transfer with it).

The wire format is pysyncobj's, unchanged (mesh/wire.py). This module imports
pysyncobj, like mesh/connection.py and mesh/raft.py; nothing else does.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.transport import TCPTransport

from mesh.connection import DISCONNECTED, ERROR, READ, LinkSettings, MeshConnection
from mesh.refusals import Refusals

log = logging.getLogger(__name__)

# Then the Raft thread does its other work (the rest waits in the backlog). Well below
# `Limits.total`, so that a burst of accepts cannot evict a peer before its first frame is read.
ACCEPTS_PER_EVENT = 16
BACKLOG = 128
# Accept errors that say "not now" (no connection, a connection gone, out of descriptors):
# skip this round; the listening socket stays.
_TRANSIENT_ACCEPT = (
    errno.EAGAIN,
    errno.EWOULDBLOCK,
    errno.ECONNABORTED,
    errno.EINTR,
    errno.EMFILE,
    errno.ENFILE,
    errno.ENOBUFS,
    errno.ENOMEM,
    errno.EPROTO,
)


@dataclass(frozen=True)
class Limits:
    """How patient the Raft port is with peers that have not proved they hold the secret."""

    handshake_timeout: float = 5.0
    per_address: int = 8
    total: int = 64


@dataclass(frozen=True)
class Liveness:
    """How fast a dead link is noticed (see mesh/connection.py)."""

    ping_interval: float = 0.25
    connect_timeout: float = 1.0
    keepalive: tuple[int, int, int] = (1, 1, 3)  # TCP keepalive: idle, interval, probes


class MeshServer:
    """The Raft port's listening socket (the interface pysyncobj uses: `bind`, `unbind`)."""

    def __init__(
        self,
        poller: Any,
        host: str,
        port: int,
        *,
        limits: Limits,
        refusals: Refusals,
        new_connection: functools.partial[MeshConnection],
        on_connection: Any,
    ) -> None:
        self._poller = poller
        self._address = (host, port)
        self._limits = limits
        self._refusals = refusals
        self._new_connection = new_connection  # MeshConnection with the settings filled in
        self._on_connection = on_connection  # the transport's _onNewIncomingConnection
        self._sock: socket.socket | None = None
        self._pending: list[MeshConnection] = []  # accepted, not yet authenticated; oldest first
        # pysyncobj swallows a failed bind and retries forever; kept so a start can fail fast.
        self.bind_error: OSError | None = None

    def bind(self) -> None:
        host, port = self._address
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            self.bind_error = exc
            raise
        self.bind_error = None
        self._sock = sock
        self._poller.subscribe(sock.fileno(), self._on_event, READ | ERROR)

    def unbind(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._poller.unsubscribe(sock.fileno())
            sock.close()

    def _on_event(self, fileno: int, event: int) -> None:
        if self._sock is None or fileno != self._sock.fileno():
            return
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, address = self._sock.accept()
            except OSError as exc:
                if exc.errno not in _TRANSIENT_ACCEPT:
                    log.warning("Raft port: accept failed: %s", exc)
                    self._refusals.note("accept failed", "")
                return
            self._admit(sock, str(address[0]))

    def _admit(self, sock: socket.socket, host: str) -> None:
        """Take the connection; if its address, or everyone, is at the cap of unproven
        connections, close one of those first (see `_evict`)."""
        pending = [c for c in self._pending if c.state != DISCONNECTED and not c.authenticated]
        same = [c for c in pending if c.peer == host]
        if len(same) >= self._limits.per_address:
            pending.remove(self._evict(same, "over the per-address cap"))
        elif len(pending) >= self._limits.total:
            pending.remove(self._evict(pending, "over the cap of unauthenticated connections"))
        self._pending = pending
        try:
            conn = self._new_connection(sock=sock, peer=host)
        except OSError:
            sock.close()
            return
        pending.append(conn)
        self._on_connection(conn)

    def _evict(self, among: list[MeshConnection], why: str) -> MeshConnection:
        """Close the oldest connection that has sent nothing sealed with the secret (else the
        oldest). Turning the newcomer away instead would let a flood that keeps the slots
        full lock out a peer reconnecting: its handshake takes a millisecond, and its first
        frame, sealed with the secret, puts it behind every junk connection in this line."""
        victim = min(among, key=lambda c: c.sealed)  # min() keeps the first, the oldest, of equals
        self._refusals.note(why, victim.peer)
        victim.disconnect()
        return victim


class MeshTransport(TCPTransport):  # type: ignore[misc]
    """pysyncobj's TCP transport on meshgate's server and connections (see the module docstring)."""

    def __init__(
        self,
        syncObj: Any,  # pysyncobj calls transportClass(syncObj, selfNode, otherNodes)
        selfNode: Any,
        otherNodes: Any,
        *,
        refusals: Refusals | None = None,
        limits: Limits | None = None,
        liveness: Liveness | None = None,
        stamp: Callable[[Any], Any] | None = None,
    ) -> None:
        if syncObj.encryptor is None:
            raise ValueError("the Raft transport never runs without the mesh secret")
        self.refusals = refusals or Refusals()
        self.limits = limits or Limits()
        self.liveness = liveness or Liveness()
        self.stamp = stamp
        self.dead_links = 0  # links closed because they went silent or never connected
        super().__init__(syncObj, selfNode, otherNodes)

    def _connection(self, **socket_args: Any) -> MeshConnection:
        conf = self._syncObj.conf
        settings = LinkSettings(
            timeout=conf.connectionTimeout,
            handshake_timeout=self.limits.handshake_timeout,
            send_buffer_size=conf.sendBufferSize,
            recv_buffer_size=conf.recvBufferSize,
            keepalive=self.liveness.keepalive,
            ping_interval=self.liveness.ping_interval,
            connect_timeout=self.liveness.connect_timeout,
        )
        return MeshConnection(
            self._syncObj._poller,
            settings,
            encryptor=self._syncObj.encryptor,
            refusals=self.refusals,
            **socket_args,
        )

    # -- TCPTransport's hooks ---------------------------------------------------------

    def _createServer(self) -> None:
        """Listen on the bind address, or on every interface at our own port (as pysyncobj)."""
        bind = self._syncObj.conf.bindAddress
        if bind is not None:
            host, port = bind.rsplit(":", 1)
            if host not in ("0.0.0.0", "::"):
                host = globalDnsResolver().resolve(host)
        else:
            own, port = self._selfNode.address.rsplit(":", 1)
            host = "::" if ":" in own else "0.0.0.0"
        self._server = MeshServer(
            self._syncObj._poller,
            host,
            int(port),
            limits=self.limits,
            refusals=self.refusals,
            new_connection=functools.partial(self._connection),
            on_connection=self._onNewIncomingConnection,
        )

    @property
    def bind_error(self) -> OSError | None:
        """Why the last attempt to listen on the Raft port failed (None once it listens)."""
        server = getattr(self, "_server", None)
        return server.bind_error if isinstance(server, MeshServer) else None

    def addNode(self, node: Any) -> None:
        """Register a peer; if this side dials it, give it one of our connections.

        The same steps as TCPTransport.addNode, which would create pysyncobj's connection."""
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conn = self._connection()
            conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
            conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
            conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
            self._connections[node] = conn

    def send(self, node: Any, message: Any) -> bool:
        if self.stamp is not None:
            message = self.stamp(message)
        return bool(super().send(node, message))

    def backlog(self, node: Any) -> int:
        """Bytes queued for `node` that its socket has not taken yet."""
        conn = self._connections.get(node)
        return conn.getSendBufferSize() if conn is not None else 0

    def _onIncomingMessageReceived(self, conn: MeshConnection, message: Any) -> None:
        """pysyncobj's handshake step; a peer that dialled again replaces its old link."""
        before = dict(self._connections)
        super()._onIncomingMessageReceived(conn, message)
        for node, current in self._connections.items():
            old = before.get(node)
            if current is conn and old is not None and old is not conn:
                old.disconnect()  # no longer ours: pysyncobj would leave it open, unwatched

    def _onTick(self) -> None:
        super()._onTick()
        now = time.monotonic()
        for conn in [*self._unknownConnections, *self._connections.values()]:
            if conn.handshake_overdue(now):
                self.refusals.note("handshake timeout", conn.peer)
                conn.disconnect()
            elif (why := conn.keep_alive(now)) is not None:
                self.dead_links += 1
                if why == "silent":  # a dial that timed out is retried quietly
                    log.info("Raft link with %s went silent: closed", conn.peer or "a peer")
        self.refusals.flush()
