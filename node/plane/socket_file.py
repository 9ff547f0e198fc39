"""Claiming the plane socket's path: a stale file is removed, a live socket never."""

from __future__ import annotations

import contextlib
import socket
import stat
from pathlib import Path
from typing import Final

# sockaddr_un.sun_path is 108 bytes on Linux, the terminating NUL included.
MAX_SOCKET_PATH: Final = 107


class PlaneSocketError(Exception):
    """The plane socket's path cannot be used; the message says what to do."""


def claim(path: Path) -> None:
    """Make `path` free for a new socket, or raise PlaneSocketError saying why not."""
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise PlaneSocketError(
            f"the plane socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
            "use a shorter data dir"
        )
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise PlaneSocketError(f"{path} exists and is not a socket; move it away")
    if answers(path):
        raise PlaneSocketError(
            f"another process is serving the plane socket {path}: is this node already "
            "running on this data dir?"
        )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: left by a process that died


def answers(path: Path) -> bool:
    """Does anything accept connections on the Unix socket at `path`?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:  # refused (nobody listens), gone, or not ours to open
            return False
    return True
