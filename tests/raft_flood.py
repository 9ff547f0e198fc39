"""Junk at a Raft port from several senders at once: what a pre-authentication flood looks like.

Each sender is a thread with its own way of wasting the node's time, and
counts what it sent:

- `huge_lengths`: frames announcing 2 GiB, followed by junk;
- `random_bytes`: random bytes as fast as the node takes them;
- `fernet_lookalikes`: a plausible length and a base64 body, so each costs the
  node an HMAC check;
- `slow_drips`: many connections sending a frame one byte at a time, too slowly to finish;
- `parallel`: as many connections held open at once as the node lets in.

Every sender reconnects as soon as the node hangs up, until `stop()`. Each
connects from its own loopback address (all of 127/8 is loopback on Linux),
and `parallel` from sixteen, so that the node's per-address cap does not turn
every sender away at accept: the junk reaches the frame reader, and the cap
on all unauthenticated connections is reached too.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable

SENDERS = ("huge_lengths", "random_bytes", "fernet_lookalikes", "slow_drips", "parallel")


class Flood:
    """Several junk senders aimed at one Raft address (`host:port`)."""

    def __init__(self, address: str, slow_drips: int = 32, parallel: int = 128) -> None:
        host, port = address.rsplit(":", 1)
        self.target = (host, int(port))
        self.slow_drip_count = slow_drips
        self.parallel_count = parallel
        self.sent: Counter[str] = Counter()  # bytes per sender
        self.connections: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._guard(getattr(self, name)), name=f"flood-{name}")
            for name in SENDERS
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def total_bytes(self) -> int:
        return sum(self.sent.values())

    def _guard(self, sender: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    sender()
                except OSError:  # the node hung up (or refused): straight back at it
                    time.sleep(0.001)

        return run

    def _connect(self, kind: str, timeout: float = 2.0) -> socket.socket:
        with self._lock:
            self.connections[kind] += 1
            n = self.connections[kind]
        number = SENDERS.index(kind)
        source = f"127.0.{number + 1}.{n % 16 + 1 if kind == 'parallel' else 1}"
        return socket.create_connection(self.target, timeout=timeout, source_address=(source, 0))

    def _count(self, kind: str, n: int) -> None:
        with self._lock:
            self.sent[kind] += n

    def _pour(self, kind: str, make: Callable[[], bytes]) -> None:
        """One connection: send what `make` returns until the node hangs up."""
        with self._connect(kind) as sock:
            while not self._stop.is_set():
                data = make()
                sock.sendall(data)  # raises once the node has closed the connection
                self._count(kind, len(data))

    def huge_lengths(self) -> None:
        self._pour("huge_lengths", lambda: struct.pack("i", 2**31 - 1) + os.urandom(60_000))

    def random_bytes(self) -> None:
        self._pour("random_bytes", lambda: os.urandom(64 * 1024))

    def fernet_lookalikes(self) -> None:
        def make() -> bytes:
            token = base64.urlsafe_b64encode(b"\x80" + os.urandom(500))
            return struct.pack("i", len(token)) + token

        self._pour("fernet_lookalikes", make)

    def slow_drips(self) -> None:
        """A plausible 900-byte frame, one byte every 0.25 s: it would take four minutes."""
        drip = struct.pack("i", 900) + os.urandom(900)
        socks: list[socket.socket] = []
        try:
            while len(socks) < self.slow_drip_count:
                socks.append(self._connect("slow_drips"))
            sent = [0] * len(socks)
            while not self._stop.is_set():
                for i, sock in enumerate(socks):
                    try:
                        sock.sendall(drip[sent[i] % len(drip) :][:1])
                        sent[i] += 1
                        self._count("slow_drips", 1)
                    except OSError:  # the node closed it (deadline or cap): open another
                        sock.close()
                        socks[i], sent[i] = self._connect("slow_drips"), 0
                self._stop.wait(0.25)
        finally:
            for sock in socks:
                sock.close()

    def parallel(self) -> None:
        socks: list[socket.socket] = []
        try:
            while not self._stop.is_set():
                while len(socks) < self.parallel_count and not self._stop.is_set():
                    socks.append(self._connect("parallel"))
                alive = []
                for sock in socks:  # keep the ones the node has not closed yet
                    sock.setblocking(False)
                    try:
                        closed = sock.recv(1) == b""
                    except BlockingIOError:
                        closed = False
                    except OSError:
                        closed = True
                    if closed:
                        sock.close()
                    else:
                        alive.append(sock)
                socks = alive
                self._stop.wait(0.02)
        finally:
            for sock in socks:
                sock.close()
