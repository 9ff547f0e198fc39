"""One Raft link: a non-blocking TCP connection on pysyncobj's poller, hardened against its peer.

pysyncobj's `TCPTransport` creates one connection object per link and talks
to it through a small interface (`connect`, `send`, `disconnect`, `state`,
three callbacks, and the `encryptor`, `sendRandKey` and `recvRandKey`
attributes of its key exchange). `MeshConnection` implements that interface
from scratch instead of patching pysyncobj's `TcpConnection`, whose reader
trusted any length and grew its buffer quadratically (issue 7).

Until the peer has proved that it holds the mesh secret, a connection is
*unauthenticated*: frames above `wire.PRE_AUTH_FRAME_LIMIT` are refused, and
`handshake_overdue` tells the transport to close it after `handshake_timeout`.
The proof is pysyncobj's key exchange: each side sends a fresh random key,
and every later frame must carry the key this side sent (`recvRandKey`),
inside a Fernet token keyed from the secret. The first frame that does so
authenticates the link: only a holder of the secret can write it, and a
replayed frame cannot carry a key made for this connection.

Everything runs on the Raft thread. Bad input never raises out of it: any
error while reading a frame or handling a message closes this connection
and is counted in `refusals`.

A dead link is noticed in about a second (issue 8), where it took 13-30 s: a
cable pulled between two nodes drops packets without a reset, so the socket
stays open while TCP retransmits with growing back-off. The transport calls
`keep_alive` on every tick: an authenticated link that has sent nothing for
`ping_interval` sends a small ping, so every link carries traffic, followers'
links to each other included; a link that has received nothing for `timeout`
is closed, and a dial that has not connected within `connect_timeout` is
abandoned (the transport dials again). `TCP_USER_TIMEOUT` closes a socket
whose sent data stays unacknowledged as long, and TCP keepalive remains as a
last resort. pysyncobj checked a link's silence only when sending on it,
which dropped the first vote request between two followers that never talk;
with pings and the check on every tick, that cannot happen.

This module imports pysyncobj (its poller and connection-state constants),
like mesh/transport.py and mesh/raft.py; nothing else in meshgate does.
"""

from __future__ import annotations

import errno
import hmac
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE

from mesh import wire
from mesh.refusals import Refusals

log = logging.getLogger(__name__)

READ, WRITE, ERROR = POLL_EVENT_TYPE.READ, POLL_EVENT_TYPE.WRITE, POLL_EVENT_TYPE.ERROR
DISCONNECTED, CONNECTING, CONNECTED = (
    CONNECTION_STATE.DISCONNECTED,
    CONNECTION_STATE.CONNECTING,
    CONNECTION_STATE.CONNECTED,
)
# Reads per poll event: an authenticated peer streaming a snapshot must not keep the
# Raft thread from its other duties (the poller is level-triggered: the rest comes next).
READS_PER_EVENT = 16
RECV_SIZE = 64 * 1024
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)
# Sent on an idle link, dropped by the receiving connection. A dict with a type no
# pysyncobj handler knows, so a node running pysyncobj's own transport ignores it.
PING = {"type": "mesh_ping"}


def set_keepalive(sock: socket.socket, keepalive: tuple[int, int, int] | None) -> None:
    """TCP keepalive (idle seconds, probe interval, probes), so a dead peer is noticed."""
    if keepalive is None:
        return
    idle, interval, count = keepalive
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    if hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


@dataclass(frozen=True)
class LinkSettings:
    """How every link of a node behaves (the transport fills it from pysyncobj's config)."""

    timeout: float = 1.5  # a link that said nothing this long is dead (connectionTimeout)
    handshake_timeout: float = 5.0  # to prove the peer holds the secret
    send_buffer_size: int = 2**16
    recv_buffer_size: int = 2**16
    keepalive: tuple[int, int, int] | None = (1, 1, 3)  # TCP keepalive: idle, interval, probes
    ping_interval: float = 0.25  # an authenticated link idle this long sends a ping
    connect_timeout: float = 1.0  # a dial not connected by then is abandoned


class MeshConnection:
    """A Raft link speaking pysyncobj's wire format, with caps and a handshake deadline.

    The camelCase methods and attributes are the interface pysyncobj's
    `TCPTransport` expects of a connection."""

    def __init__(
        self,
        poller: Any,
        settings: LinkSettings,
        *,
        encryptor: wire.Fernet | None,
        refusals: Refusals,
        sock: socket.socket | None = None,
        peer: str = "",
    ) -> None:
        # pysyncobj's transport reads and sets these three during its key exchange.
        self.encryptor = encryptor
        self.sendRandKey: bytes | None = None
        self.recvRandKey: bytes | None = None
        self.peer = peer  # "host" of the other side, for caps and logs
        self._poller = poller
        self._settings = settings
        self._refusals = refusals
        self._on_message: Callable[[Any], None] | None = None
        self._on_connected: Callable[[], None] | None = None
        self._on_disconnected: Callable[[], None] | None = None
        self._sock: socket.socket | None = None
        self._fileno: int | None = None
        self._mask = 0
        self._state: int = DISCONNECTED
        self._reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
        self._write = bytearray()
        self._authenticated = False
        self._sealed = False  # sent a frame sealed with the secret (perhaps replayed)
        self._last_timestamp = 0
        self._opened_at = self._last_read = self._last_sent = time.monotonic()
        self.bytes_sent = 0  # over this connection's lifetime (all its sockets)
        if sock is not None:  # accepted by the server: already connected
            self._configure(sock)
            self._attach(sock, CONNECTED)

    # -- pysyncobj's connection interface --------------------------------------------

    @property
    def state(self) -> int:
        return self._state

    def fileno(self) -> int | None:
        return self._fileno

    def setOnMessageReceivedCallback(self, callback: Callable[[Any], None] | None) -> None:
        self._on_message = callback

    def setOnConnectedCallback(self, callback: Callable[[], None] | None) -> None:
        self._on_connected = callback

    def setOnDisconnectedCallback(self, callback: Callable[[], None] | None) -> None:
        self._on_disconnected = callback

    def getSendBufferSize(self) -> int:
        return len(self._write)

    def connect(self, host: str | None, port: int) -> bool:
        """Start a non-blocking connect; the poller reports its completion."""
        if host is None:  # the peer's name did not resolve
            return False
        self.disconnect()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            return False
        try:
            self._configure(sock)
            code = sock.connect_ex((host, port))
        except OSError:
            sock.close()
            return False
        if code not in (0, *_IN_PROGRESS):
            sock.close()
            return False
        self.peer = host
        self._attach(sock, CONNECTING)
        return True

    def send(self, message: Any) -> None:
        """Queue one message and write what the socket takes now."""
        if self._sock is None:
            return
        if self.sendRandKey is not None:
            message = (self.sendRandKey, message)
        if self.encryptor is None:
            raise RuntimeError("a Raft connection never sends without the mesh secret")
        self._write += wire.seal(message, self.encryptor, int(time.monotonic()))
        self._last_sent = time.monotonic()
        self._flush()

    def disconnect(self) -> None:
        """Close the socket (if open) and tell the transport, once."""
        was_open = self._state != DISCONNECTED
        self.sendRandKey = self.recvRandKey = None
        self._authenticated = self._sealed = False
        self._last_timestamp = 0
        self._reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
        self._write = bytearray()
        sock, self._sock = self._sock, None
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
            self._mask = 0
        if sock is not None:
            sock.close()
        self._state = DISCONNECTED
        if was_open and self._on_disconnected is not None:
            self._on_disconnected()

    # -- what the transport and server ask ---------------------------------------------

    @property
    def authenticated(self) -> bool:
        """The peer proved it holds the mesh secret (see the module docstring)."""
        return self._authenticated

    @property
    def sealed(self) -> bool:
        """The peer sent a frame sealed with the mesh secret: it holds it, or replays one."""
        return self._sealed

    def keep_alive(self, now: float) -> str | None:
        """Called on every tick: ping an idle link, close a dead one (see the module
        docstring). Returns why it closed the link, or None."""
        settings = self._settings
        if self._state == CONNECTING and now - self._opened_at > settings.connect_timeout:
            self.disconnect()
            return "connect timeout"
        if self._state != CONNECTED or not self._authenticated:
            return None  # the handshake deadline covers a link that has not authenticated
        if now - self._last_read > settings.timeout and not self._readable():
            self.disconnect()
            return "silent"
        if now - self._last_sent >= settings.ping_interval:
            self.send(PING)
        return None

    def handshake_overdue(self, now: float) -> bool:
        """Open for longer than the handshake timeout without authenticating."""
        return (
            self._state == CONNECTED
            and not self._authenticated
            and now - self._opened_at > self._settings.handshake_timeout
        )

    # -- the poller's side ------------------------------------------------------------

    def _configure(self, sock: socket.socket) -> None:
        settings = self._settings
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer_size)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings.recv_buffer_size)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        set_keepalive(sock, settings.keepalive)
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: unacknowledged data this long = dead
            user_timeout = int(settings.timeout * 1000)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout)
        sock.setblocking(False)

    def _attach(self, sock: socket.socket, state: int) -> None:
        self._sock = sock
        self._fileno = sock.fileno()
        self._state = state
        self._opened_at = self._last_read = self._last_sent = time.monotonic()
        self._subscribe()

    def _subscribe(self) -> None:
        if self._fileno is None:
            return
        mask = READ | ERROR
        if self._write or self._state == CONNECTING:
            mask |= WRITE
        if mask != self._mask:
            self._poller.subscribe(self._fileno, self._on_event, mask)
            self._mask = mask

    def _on_event(self, fileno: int, event: int) -> None:
        if fileno != self._fileno:
            return  # an event for a socket this connection has since closed
        try:
            self._handle(event)
        except Exception as exc:  # bad input, or a message pysyncobj could not handle
            self._refuse("error", exc)

    def _handle(self, event: int) -> None:
        if event & ERROR:
            self.disconnect()
            return
        sock = self._sock
        assert sock is not None
        if self._state == CONNECTING:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.disconnect()
                return
            self._state = CONNECTED
            self._opened_at = self._last_read = self._last_sent = time.monotonic()
            self._subscribe()
            if self._on_connected is not None:
                self._on_connected()  # pysyncobj starts its key exchange here
            return
        if event & WRITE:
            self._flush()
        if event & READ and self._state == CONNECTED:
            self._read()

    def _flush(self) -> None:
        while self._write and self._sock is not None:
            try:
                sent = self._sock.send(self._write)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.disconnect()
                return
            if sent <= 0:
                break
            self.bytes_sent += sent
            del self._write[:sent]
        self._subscribe()

    def _read(self) -> None:
        for _ in range(READS_PER_EVENT):
            sock = self._sock
            if sock is None:
                return
            try:
                chunk = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.disconnect()
                return
            if not chunk:  # the peer closed
                self.disconnect()
                return
            self._last_read = time.monotonic()
            self._reader.feed(chunk)
            self._deliver()
            if len(chunk) < RECV_SIZE:
                return  # drained: no need for another recv that would say EAGAIN

    def _deliver(self) -> None:
        """Hand every complete frame's message to the transport, in order."""
        while self._state == CONNECTED:
            try:
                frame = self._reader.next_frame()
                if frame is None:
                    return
                message = self._open(frame)
            except wire.FrameError as exc:
                self._refuse("frame", exc)
                return
            if message == PING:
                continue  # it did its work: `_last_read` moved
            if self._on_message is not None:
                self._on_message(message)

    def _open(self, frame: bytes) -> Any:
        if self.encryptor is None:
            raise wire.FrameError("no mesh secret to decrypt with")
        limit = wire.MESSAGE_LIMIT if self._authenticated else wire.PRE_AUTH_MESSAGE_LIMIT
        timestamp, message = wire.open_frame(frame, self.encryptor, limit)
        self._sealed = True
        if timestamp < self._last_timestamp:
            raise wire.FrameError("frame older than the previous one (a replay?)")
        self._last_timestamp = timestamp
        expected = self.recvRandKey
        if expected is None:
            return message  # the peer's first frame: its key for us (or its reply to ours)
        if not (
            isinstance(message, tuple)
            and len(message) == 2
            and isinstance(message[0], bytes)
            and hmac.compare_digest(message[0], expected)
        ):
            raise wire.FrameError("frame does not carry this connection's key")
        if not self._authenticated:
            self._authenticated = True
            self._reader.limit = wire.FRAME_LIMIT
        return message[1]

    def _readable(self) -> bool:
        """Is data waiting to be read? (Then the silence is this thread's, not the peer's:
        the Raft thread was busy, and the poller has not run yet.)"""
        sock = self._sock
        if sock is None:
            return False
        try:
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # an error to report: let the read path see it

    def _refuse(self, kind: str, exc: BaseException) -> None:
        if self._authenticated:  # a peer holding the secret, or a bug: worth a line each
            log.warning(
                "closed the Raft link with %s: %s", self.peer, exc, exc_info=kind == "error"
            )
            self._refusals.note(f"authenticated {kind}", self.peer, str(exc))
        else:
            self._refusals.note(f"unauthenticated {kind}", self.peer, str(exc))
        self.disconnect()
