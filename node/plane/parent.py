"""A data-plane process's tie to its control process: it never outlives it.

Two ways, since either alone has a gap: the kernel sends SIGTERM when the parent
dies (`PR_SET_PDEATHSIG`, Linux), and the link the supervisor passed (one end of a
socket pair) reads end-of-file once no process holds the other end. The link also
carries the one message a child sends: `ready`, once it listens and is linked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

from node.plane.supervisor import DRAIN, READY_LINE

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
MOST_LINE = 128


def drain_timings(line: bytes) -> tuple[float, float] | None:
    """`drain GRACE DRAIN_DELAY` as (grace, drain_delay); None for any other line."""
    words = line.split()
    if len(words) != 3 or words[0] != DRAIN:
        return None
    try:
        grace, delay = float(words[1]), float(words[2])
    except ValueError:
        return None
    if not (0 <= grace < 1e6 and 0 <= delay < 1e6):  # NaN fails too
        return None
    return grace, delay


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent exits; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:  # it died before the request above took effect
        os._exit(1)


def orphaned(parent_pid: int) -> bool:
    return os.getppid() != parent_pid


class ParentLink:
    """This child's end of the supervisor's socket pair."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self._watch: asyncio.Task[None] | None = None

    def announce_ready(self) -> None:
        with contextlib.suppress(OSError):  # a parent that is gone hears nothing
            self.sock.send(READY_LINE)

    def watch(self, drain: Callable[[float, float], None], gone: Callable[[], None]) -> None:
        """Call `drain(grace, drain_delay)` when the control process says so, and `gone()`
        once it closes its end (it exited)."""
        self._watch = asyncio.create_task(self._read(drain, gone), name="parent-link")

    async def _read(self, drain: Callable[[float, float], None], gone: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        pending = b""
        with contextlib.suppress(OSError):
            while chunk := await loop.sock_recv(self.sock, 256):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    timings = drain_timings(line)
                    if timings is not None:
                        drain(*timings)
                pending = pending[-MOST_LINE:]  # a line is short; anything longer is junk
        gone()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.sock.close()
