"""Reading a `file_path` component: the file is opened once and checked on that descriptor,
so a FIFO or a device is refused at once (never read, never blocking), and a size check
cannot be dodged by swapping the file after it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from node.wasm.intake import IntakeError, read_file


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(b"\0asm" + b"x" * 100)
    assert read_file(str(path), 104) == b"\0asm" + b"x" * 100


def test_a_fifo_without_a_writer_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wasm"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(IntakeError, match="not a regular file"):
        read_file(str(fifo), 1024)
    assert time.monotonic() - started < 2  # a blocking open would wait for a writer


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/dev/zero", "not a regular file"),
        ("relative.wasm", "absolute path"),
        ("/nonexistent/m.wasm", "no such file"),
    ],
)
def test_what_is_not_a_readable_regular_file_is_refused(path: str, said: str) -> None:
    with pytest.raises(IntakeError, match=said):
        read_file(path, 1024)


def test_a_directory_and_a_file_over_the_limit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(IntakeError, match="not a regular file"):
        read_file(str(tmp_path), 1024)
    big = tmp_path / "big.wasm"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(IntakeError, match="over the limit of 1024"):
        read_file(str(big), 1024)
