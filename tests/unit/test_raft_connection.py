"""A Raft link and the Raft port's accept caps (`mesh/connection.py`, `mesh/transport.py`).

Real sockets on loopback and pysyncobj's own poller, driven by the test: no
Raft group, no threads. The peer side is a plain socket writing frames the
way pysyncobj does.
"""

from __future__ import annotations

import functools
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pysyncobj.encryptor import getEncryptor
from pysyncobj.poller import PollPoller

from mesh import wire
from mesh.connection import CONNECTED, CONNECTING, DISCONNECTED, PING, LinkSettings, MeshConnection
from mesh.refusals import Refusals
from mesh.transport import Limits, MeshServer
from tests.support import MESH_SECRET

ENCRYPTOR = getEncryptor(MESH_SECRET)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of one loopback TCP connection (a Raft link is TCP: it sets TCP options)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    return ours, peer


class Link:
    """A MeshConnection on one end of a socketpair; `peer` is the raw other end."""

    def __init__(self, handshake_timeout: float = 5.0) -> None:
        self.poller = PollPoller()
        self.refusals = Refusals()
        ours, self.peer = tcp_pair()
        self.messages: list[Any] = []
        self.closed = 0
        self.conn = MeshConnection(
            self.poller,
            LinkSettings(handshake_timeout=handshake_timeout, keepalive=None),
            encryptor=ENCRYPTOR,
            refusals=self.refusals,
            sock=ours,
            peer="test",
        )
        self.conn.setOnMessageReceivedCallback(self.messages.append)
        self.conn.setOnDisconnectedCallback(self._closed)

    def _closed(self) -> None:
        self.closed += 1

    def poll_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            self.poller.poll(0.01)

    def close(self) -> None:
        self.conn.disconnect()
        self.peer.close()


@pytest.fixture
def link() -> Iterator[Link]:
    made = Link()
    yield made
    made.close()


def test_the_key_exchange_authenticates_and_raises_the_limits(link: Link) -> None:
    their_key, our_key = os.urandom(32), os.urandom(32)
    link.peer.sendall(wire.seal(their_key, ENCRYPTOR, 1))  # the dialer's first frame
    link.poll_until(lambda: len(link.messages) == 1)
    assert link.messages == [their_key] and not link.conn.authenticated
    # what pysyncobj's transport does with it: remember both keys, answer with ours
    link.conn.sendRandKey, link.conn.recvRandKey = their_key, our_key
    big = os.urandom(2 * 1024 * 1024)  # far above the pre-authentication caps
    link.peer.sendall(wire.seal((our_key, "10.0.0.1:4321"), ENCRYPTOR, 2))
    link.peer.sendall(wire.seal((our_key, {"type": "x", "data": big}), ENCRYPTOR, 3))
    link.poll_until(lambda: len(link.messages) == 3)
    assert link.conn.authenticated and link.conn.state == CONNECTED
    assert link.messages[1] == "10.0.0.1:4321" and link.messages[2]["data"] == big
    assert not link.conn.handshake_overdue(time.monotonic() + 3600)


def test_a_frame_without_this_connections_key_is_refused(link: Link) -> None:
    link.conn.recvRandKey = os.urandom(32)
    link.peer.sendall(wire.seal((os.urandom(32), "replayed"), ENCRYPTOR, 1))
    link.poll_until(lambda: link.conn.state == DISCONNECTED)
    assert link.messages == [] and link.closed == 1
    assert link.refusals.total["unauthenticated frame"] == 1


def test_a_huge_length_closes_the_connection_on_its_four_bytes(link: Link) -> None:
    link.peer.sendall(struct.pack("i", 2**31 - 1) + b"\x00" * 100)
    link.poll_until(lambda: link.conn.state == DISCONNECTED)
    assert link.closed == 1 and link.messages == []
    assert link.peer.recv(10) == b""  # the peer sees the close


def test_junk_and_another_secrets_frames_are_refused() -> None:
    other = getEncryptor("another-secret-" + "k" * 40)
    for junk in (os.urandom(600), wire.seal("hi", other, 1), struct.pack("i", 10) + b"z" * 10):
        link = Link()
        try:
            link.peer.sendall(junk)
            link.poll_until(lambda link=link: link.conn.state == DISCONNECTED)
            assert link.messages == []
        finally:
            link.close()


def test_a_slow_drip_never_authenticates_and_is_overdue_after_the_deadline() -> None:
    link = Link(handshake_timeout=0.3)
    try:
        link.peer.sendall(struct.pack("i", 200)[:2])  # half a length, then nothing
        link.poller.poll(0.05)
        assert link.conn.state == CONNECTED and not link.conn.handshake_overdue(time.monotonic())
        assert link.conn.handshake_overdue(time.monotonic() + 0.5)
    finally:
        link.close()


def test_a_partial_frame_waits_for_the_rest(link: Link) -> None:
    frame = wire.seal("whole", ENCRYPTOR, 1)
    link.peer.sendall(frame[:7])
    link.poller.poll(0.05)
    assert link.messages == [] and link.conn.state == CONNECTED
    link.peer.sendall(frame[7:])
    link.poll_until(lambda: link.messages == ["whole"])


def test_sent_messages_are_pysyncobj_frames(link: Link) -> None:
    link.conn.sendRandKey = b"k" * 32
    link.conn.send({"type": "response_vote", "term": 3})
    data = link.peer.recv(4096)
    reader = wire.FrameReader(wire.FRAME_LIMIT)
    reader.feed(data)
    frame = reader.next_frame()
    assert frame is not None
    _, message = wire.open_frame(frame, ENCRYPTOR, wire.MESSAGE_LIMIT)
    assert message == (b"k" * 32, {"type": "response_vote", "term": 3})


class Port:
    """A MeshServer on a free loopback port, polled by the test."""

    def __init__(self, limits: Limits) -> None:
        self.poller = PollPoller()
        self.refusals = Refusals()
        self.accepted: list[MeshConnection] = []
        self.port = _free_port()
        self.server = MeshServer(
            self.poller,
            "127.0.0.1",
            self.port,
            limits=limits,
            refusals=self.refusals,
            new_connection=functools.partial(
                MeshConnection,
                self.poller,
                LinkSettings(handshake_timeout=limits.handshake_timeout, keepalive=None),
                encryptor=ENCRYPTOR,
                refusals=self.refusals,
            ),
            on_connection=self.accepted.append,
        )
        self.server.bind()
        self.clients: list[socket.socket] = []

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        client = socket.create_connection(("127.0.0.1", self.port), source_address=(source, 0))
        self.clients.append(client)
        return client

    def poll_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            self.poller.poll(0.01)

    def open(self) -> list[MeshConnection]:
        return [c for c in self.accepted if c.state == CONNECTED]

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for conn in self.accepted:
            conn.disconnect()
        self.server.unbind()


def _closed_by_server(client: socket.socket) -> bool:
    client.settimeout(0.5)
    try:
        return client.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_past_the_per_address_cap_the_oldest_unproven_connection_is_closed() -> None:
    port = Port(Limits(per_address=3, total=10))
    try:
        clients = [port.connect() for _ in range(6)]
        port.poll_until(lambda: len(port.accepted) == 6)
        assert port.open() == port.accepted[3:]  # never more than 3 from one address
        assert port.refusals.total["over the per-address cap"] == 3
        assert [_closed_by_server(c) for c in clients] == [True] * 3 + [False] * 3
        other = port.connect("127.0.0.2")  # another address has its own allowance
        port.poll_until(lambda: len(port.accepted) == 7)
        assert len(port.open()) == 4 and not _closed_by_server(other)
    finally:
        port.close()


def test_past_the_total_cap_a_flood_cannot_push_out_a_peer_that_sent_a_sealed_frame() -> None:
    port = Port(Limits(per_address=100, total=4))
    try:
        peer = port.connect()
        port.poll_until(lambda: len(port.accepted) == 1)
        peer.sendall(wire.seal(os.urandom(32), ENCRYPTOR, 1))  # a real dialer's first frame
        port.poll_until(lambda: port.accepted[0].sealed)
        for _ in range(10):  # junk connections that never send a thing
            port.connect()
        port.poll_until(lambda: len(port.accepted) == 11)
        assert len(port.open()) == 4 and port.accepted[0] in port.open()
        assert port.refusals.total["over the cap of unauthenticated connections"] == 7
        assert not _closed_by_server(peer)
    finally:
        port.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _authenticate(link: Link) -> bytes:
    """Run the key exchange as in the test above; returns the key the peer must carry."""
    their_key, our_key = os.urandom(32), os.urandom(32)
    link.peer.sendall(wire.seal(their_key, ENCRYPTOR, 1))
    link.poll_until(lambda: len(link.messages) == 1)
    link.conn.sendRandKey, link.conn.recvRandKey = their_key, our_key
    link.peer.sendall(wire.seal((our_key, "10.0.0.1:4321"), ENCRYPTOR, 2))
    link.poll_until(lambda: link.conn.authenticated)
    return our_key


def _frames(sock: socket.socket) -> list[Any]:
    sock.settimeout(1)
    reader = wire.FrameReader(wire.FRAME_LIMIT)
    reader.feed(sock.recv(65536))
    found = []
    while (frame := reader.next_frame()) is not None:
        found.append(wire.open_frame(frame, ENCRYPTOR, wire.MESSAGE_LIMIT)[1])
    return found


def test_an_idle_link_pings_and_a_ping_is_never_delivered(link: Link) -> None:
    key = _authenticate(link)
    now = time.monotonic()
    assert link.conn.keep_alive(now) is None  # sent nothing yet, but not idle long enough
    assert link.conn.keep_alive(now + 0.3) is None
    assert [m[1] for m in _frames(link.peer)] == [PING]
    link.peer.sendall(wire.seal((key, PING), ENCRYPTOR, 3))
    link.peer.sendall(wire.seal((key, {"type": "x"}), ENCRYPTOR, 3))
    link.poll_until(lambda: len(link.messages) == 3)
    assert link.messages[2] == {"type": "x"}


def test_a_silent_link_is_closed_but_not_while_data_waits_to_be_read(link: Link) -> None:
    key = _authenticate(link)
    link.peer.sendall(wire.seal((key, "waiting"), ENCRYPTOR, 3))
    time.sleep(0.05)  # arrived, but the poller has not run (a busy Raft thread)
    assert link.conn.keep_alive(time.monotonic() + 2) is None
    assert link.conn.state == CONNECTED
    link.poll_until(lambda: link.messages[-1] == "waiting")
    assert link.conn.keep_alive(time.monotonic() + 2) == "silent"
    assert link.conn.state == DISCONNECTED and link.closed == 1


def test_a_dial_that_does_not_connect_in_time_is_abandoned() -> None:
    conn = MeshConnection(
        PollPoller(),
        LinkSettings(connect_timeout=0.5, keepalive=None),
        encryptor=ENCRYPTOR,
        refusals=Refusals(),
    )
    if not conn.connect("203.0.113.1", 7000):  # TEST-NET-3: nobody answers, if routed
        pytest.skip("no route to a test address here")
    assert conn.state == CONNECTING
    assert conn.keep_alive(time.monotonic()) is None
    assert conn.keep_alive(time.monotonic() + 1) == "connect timeout"
    assert conn.state == DISCONNECTED
