"""pysyncobj's wire format, read defensively: frames capped before buffering, inflation bounded.

A frame on the Raft port is a 4-byte native signed int (the length), then a
Fernet token (AES-CBC + HMAC, keyed from the mesh secret) of the
zlib-compressed pickle of one message. We keep that format, so a node on this
code talks to one on pysyncobj's own connection class. The one difference:
pysyncobj writes pickle protocol 2 and we write protocol 4, which any Python 3
unpickler (pysyncobj's included) reads, and which our restricted unpickler
reads three times faster (protocol 2 has no frames: a file-based unpickler
reads it opcode by opcode).

pysyncobj's reader trusted the length before anything was authenticated and
grew its buffer with `bytes +=`: 73 MiB of junk in 30 s made a follower fail
every write (issue 7). Here:

- `FrameReader` refuses a length above its `limit` as soon as the 4 bytes
  arrive, before waiting for (or holding) the body; its buffer is a
  `bytearray` consumed from the front, so reading is linear;
- `open_frame` checks the HMAC before anything else, inflates at most
  `max_size` bytes (no zlib bombs), and unpickles with `mesh.unpickler`.

The caller chooses the limits: small ones until the peer proved it holds the
secret (`PRE_AUTH_*`), larger ones after. pysyncobj sends log entries in
batches of 64 KiB and splits larger entries and snapshots into 64 KiB
chunks, so an honest frame is far below `FRAME_LIMIT`.
"""

from __future__ import annotations

import base64
import pickle
import struct
import zlib
from typing import Any, Protocol

from mesh import unpickler

LENGTH = struct.Struct("i")  # pysyncobj's 'i': native byte order, 4 bytes
PRE_AUTH_FRAME_LIMIT = 1024  # the key exchange and a node's address are ~200 bytes
PRE_AUTH_MESSAGE_LIMIT = 4096
FRAME_LIMIT = 32 * 1024 * 1024
MESSAGE_LIMIT = 64 * 1024 * 1024
PICKLE_PROTOCOL = 4  # pysyncobj writes 2 and reads any (see the module docstring)
COMPRESSION_LEVEL = 3  # what pysyncobj uses


class FrameError(ValueError):
    """A frame or message that must not be accepted; the connection is dropped."""


class Fernet(Protocol):
    """The part of `cryptography.fernet.Fernet` (or `MultiFernet`) used here."""

    def encrypt_at_time(self, data: bytes, current_time: int, /) -> bytes: ...

    def decrypt(self, token: bytes, /) -> bytes: ...


class FrameReader:
    """Splits a byte stream into frames; never buffers more than one frame and one read."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # the largest frame accepted now; the caller raises it after auth
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next complete frame's payload, or None until more bytes arrive.

        Raises FrameError for a length outside 1..limit as soon as the length is known."""
        buffer = self._buffer
        if len(buffer) < LENGTH.size:
            return None
        (length,) = LENGTH.unpack_from(buffer)
        if not 0 < length <= self.limit:
            raise FrameError(f"frame length {length} outside 1..{self.limit}")
        end = LENGTH.size + length
        if len(buffer) < end:
            return None
        with memoryview(buffer) as view:
            frame = bytes(view[LENGTH.size : end])
        del buffer[:end]  # O(1) amortised: a bytearray advances its start on front deletes
        return frame

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer = bytearray()


def seal(message: Any, encryptor: Fernet, timestamp: int) -> bytes:
    """One frame for `message`, as pysyncobj writes it."""
    data = zlib.compress(pickle.dumps(message, PICKLE_PROTOCOL), COMPRESSION_LEVEL)
    token = encryptor.encrypt_at_time(data, timestamp)
    return LENGTH.pack(len(token)) + token


def open_frame(frame: bytes, encryptor: Fernet, max_size: int) -> tuple[int, Any]:
    """(the sender's timestamp, the message) from one frame's payload; FrameError if refused."""
    try:
        data = encryptor.decrypt(frame)  # HMAC first: junk costs one hash per accepted key
    except Exception:
        raise FrameError("not encrypted with the mesh secret") from None
    # The token is authentic now; its timestamp is bytes 1..8 (big-endian) of the
    # decoded token, i.e. the first 12 base64 characters.
    timestamp = int.from_bytes(base64.urlsafe_b64decode(frame[:12])[1:9], "big")
    plain = inflate(data, max_size)
    try:
        return timestamp, unpickler.loads(plain)
    except Exception as exc:
        raise FrameError(f"message refused: {type(exc).__name__}: {exc}") from None


def inflate(data: bytes, max_size: int) -> bytes:
    """zlib-decompress `data` into at most `max_size` bytes, or raise FrameError."""
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(data, max_size)
    except zlib.error as exc:
        raise FrameError(f"bad compressed data: {exc}") from None
    if inflater.unconsumed_tail:
        raise FrameError(f"message inflates beyond {max_size} bytes")
    if not inflater.eof or inflater.unused_data:
        raise FrameError("truncated or trailing compressed data")
    return plain
