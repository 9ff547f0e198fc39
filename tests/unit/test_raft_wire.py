"""The Raft wire format as meshgate reads it (`mesh/wire.py`): caps first, bounded inflation.

Frames are built exactly as pysyncobj's own connection writes them, so these
tests also pin the format: a node on our transport must read what a node on
pysyncobj's `TcpConnection` sends, and the other way round.
"""

from __future__ import annotations

import pickle
import struct
import zlib

import pytest
from cryptography.fernet import Fernet
from pysyncobj.encryptor import getEncryptor

from mesh import wire
from tests.support import MESH_SECRET

ENCRYPTOR = getEncryptor(MESH_SECRET)


def pysyncobj_frame(message: object, encryptor: Fernet = ENCRYPTOR, timestamp: int = 7) -> bytes:
    """What pysyncobj's TcpConnection.send writes for `message`."""
    data = zlib.compress(pickle.dumps(message, 2), 3)
    token = encryptor.encrypt_at_time(data, timestamp)
    return struct.pack("i", len(token)) + token


def pysyncobj_read(frame: bytes, encryptor: Fernet = ENCRYPTOR) -> tuple[int, object]:
    """What pysyncobj's TcpConnection does with one frame's payload."""
    timestamp = encryptor.extract_timestamp(frame)
    return timestamp, pickle.loads(zlib.decompress(encryptor.decrypt(frame)))


def test_we_read_what_pysyncobj_writes_and_it_reads_what_we_write() -> None:
    message = {"type": "append_entries", "term": 3, "entries": [(b"\x00abc", 5, 3)]}
    reader = wire.FrameReader(wire.FRAME_LIMIT)
    reader.feed(wire.seal(message, ENCRYPTOR, 42) + pysyncobj_frame(message, timestamp=43))
    ours, theirs = reader.next_frame(), reader.next_frame()
    assert ours is not None and theirs is not None
    assert pysyncobj_read(ours) == (42, message)
    assert wire.open_frame(theirs, ENCRYPTOR, wire.MESSAGE_LIMIT) == (43, message)
    assert wire.open_frame(ours, ENCRYPTOR, wire.MESSAGE_LIMIT) == (42, message)


def test_partial_frames_wait_for_the_rest_and_back_to_back_frames_split() -> None:
    frames = pysyncobj_frame("first") + pysyncobj_frame(["second"]) + pysyncobj_frame(3)
    reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
    got = []
    for i in range(len(frames)):  # one byte at a time: every split point
        reader.feed(frames[i : i + 1])
        while (frame := reader.next_frame()) is not None:
            got.append(wire.open_frame(frame, ENCRYPTOR, wire.PRE_AUTH_MESSAGE_LIMIT)[1])
    assert got == ["first", ["second"], 3]
    assert reader.buffered == 0


def test_a_huge_length_is_refused_from_its_four_bytes_before_any_body() -> None:
    reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
    reader.feed(struct.pack("i", 2**31 - 1))
    with pytest.raises(wire.FrameError, match="outside"):
        reader.next_frame()
    assert reader.buffered == 4  # nothing was allocated for the announced 2 GiB


@pytest.mark.parametrize("length", [0, -1, -(2**31), wire.PRE_AUTH_FRAME_LIMIT + 1])
def test_lengths_outside_the_limit_are_refused(length: int) -> None:
    reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
    reader.feed(struct.pack("i", length) + b"x" * 8)
    with pytest.raises(wire.FrameError):
        reader.next_frame()


def test_the_limit_can_be_raised_after_authentication() -> None:
    frame = struct.pack("i", 5000) + b"y" * 5000
    reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
    reader.feed(frame)
    with pytest.raises(wire.FrameError):
        reader.next_frame()
    reader = wire.FrameReader(wire.PRE_AUTH_FRAME_LIMIT)
    reader.limit = wire.FRAME_LIMIT  # what a connection does once the peer proved the secret
    reader.feed(frame)
    assert reader.next_frame() == b"y" * 5000


def test_the_buffer_is_a_bytearray_consumed_from_the_front() -> None:
    reader = wire.FrameReader(wire.FRAME_LIMIT)
    frame = pysyncobj_frame("m")
    for _ in range(1000):
        reader.feed(frame)
    assert isinstance(reader._buffer, bytearray)
    for _ in range(1000):
        assert reader.next_frame() is not None
    assert reader.buffered == 0 and isinstance(reader._buffer, bytearray)


def test_a_frame_from_another_secret_or_unencrypted_is_refused() -> None:
    for frame in (
        pysyncobj_frame("hi", getEncryptor("some-other-secret-" + "q" * 30))[4:],
        zlib.compress(pickle.dumps("hi", 2)),
        b"\x00" * 100,
    ):
        with pytest.raises(wire.FrameError, match="mesh secret"):
            wire.open_frame(frame, ENCRYPTOR, wire.MESSAGE_LIMIT)


def test_inflation_is_bounded_no_zlib_bomb() -> None:
    bomb = zlib.compress(b"\x00" * (10 * 1024 * 1024), 9)  # 10 MiB from ~10 KiB
    assert len(bomb) < 20_000
    with pytest.raises(wire.FrameError, match="inflates beyond"):
        wire.inflate(bomb, wire.PRE_AUTH_MESSAGE_LIMIT)
    token = ENCRYPTOR.encrypt_at_time(bomb, 1)
    with pytest.raises(wire.FrameError, match="inflates beyond"):
        wire.open_frame(token, ENCRYPTOR, 1024 * 1024)
    assert wire.inflate(zlib.compress(b"ok"), 2) == b"ok"


def test_truncated_or_trailing_compressed_data_is_refused() -> None:
    data = zlib.compress(pickle.dumps("message", 2))
    for bad in (data[:-3], data + b"junk", b"not zlib"):
        with pytest.raises(wire.FrameError):
            wire.inflate(bad, 4096)


def test_an_authentic_frame_with_a_refused_pickle_is_a_frame_error() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (print, ("never",))

    token = pysyncobj_frame(Evil())[4:]
    with pytest.raises(wire.FrameError, match=r"refused to unpickle global builtins\.print"):
        wire.open_frame(token, ENCRYPTOR, wire.MESSAGE_LIMIT)
