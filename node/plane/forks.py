"""The control process's side of the fork server (node/plane/fork_server.py): start it
while this process has no thread but its own, ask it for each data-plane process, and
hold each forked child as `asyncio.subprocess.Process` holds one it started.

A data-plane process forked this way starts without the ~1 s of CPU its imports cost a
fresh interpreter. Where the server cannot run (not Linux, a thread already running) or
stops answering, children are started as before: `python -m node.cli ...`.
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
import threading
from collections.abc import Callable, Sequence
from typing import Final

from node.digits import ascii_int
from node.plane.fork_server import LINK_FD, MOST_REQUEST, serve
from node.plane.supervisor import Child, Spawn, SpawnAgain, exec_spawn

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER: Final = 36
CLOSE_SECS: Final = 2.0  # for the server to exit once its socket closes
ANSWER_SECS: Final = 10.0  # for the server to fork a child (two forks: milliseconds)

Arguments = Callable[[str, int], Sequence[str]]  # a child's name, its link's fd -> its arguments


class ForkServerGone(OSError):
    """The fork server does not answer: start children another way."""


class ForkedChild:
    """A process this one did not start itself but is the parent of (the fork server's
    child, reparented here): its pid, its exit status once it exits, and a pidfd to wait
    on and signal it (so a pid reused after it exits is never signalled)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd: int | None = os.pidfd_open(pid)
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        assert self._pidfd is not None
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        if not self._exited.done():
            self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self._pidfd is None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The running fork server: `spawn` forks a data-plane process from it.

    Once a request fails (a silent or stopped server among them), the server is killed
    and reaped before the caller starts its child another way: a request it still holds
    would fork an untracked copy of that child later, holding the same link."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self._lock = asyncio.Lock()  # one request at a time: replies carry no name
        self._server: ForkedChild | None = None

    @classmethod
    def start(cls) -> ForkServer | None:
        """Fork the server now, or say why not (None): call before any thread starts."""
        if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
            return None
        if threading.active_count() > 1:
            log.warning("threads are running already: data-plane processes start unforked")
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d", ctypes.get_errno())
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        control = os.getpid()
        for stream in (sys.stdout, sys.stderr):  # or both processes would write what is buffered
            stream.flush()
        pid = os.fork()
        if pid == 0:
            serve(theirs, control)  # never returns
        theirs.close()
        ours.setblocking(False)
        return cls(ours, pid)

    def watch(self) -> ForkedChild:
        """The server as a child of this process, reaped as soon as it exits (call in the
        event loop; once is enough)."""
        if self._server is None:
            self._server = ForkedChild(self.pid)
        return self._server

    async def spawn(self, arguments: Sequence[str], link: socket.socket) -> ForkedChild:
        """Fork a data-plane process running `meshgate ARGUMENTS` with `link` as LINK_FD;
        ForkServerGone (the server killed and reaped) if it cannot."""
        request = "\0".join(arguments).encode()
        if len(request) > MOST_REQUEST:
            raise ForkServerGone("the arguments are too long for the fork server")
        async with self._lock:
            try:
                reply = await self._ask(request, link)
            except ForkServerGone:
                await self._kill()
                raise
        return ForkedChild(reply)

    async def _ask(self, request: bytes, link: socket.socket) -> int:
        loop = asyncio.get_running_loop()
        try:
            socket.send_fds(self.sock, [request], [link.fileno()])
            answer = loop.sock_recv(self.sock, 256)
            reply = (await asyncio.wait_for(answer, ANSWER_SECS)).decode()
        except TimeoutError:
            raise ForkServerGone(f"the fork server is silent ({ANSWER_SECS:g} s)") from None
        except OSError as exc:
            raise ForkServerGone(f"the fork server is gone: {exc}") from exc
        if not reply:
            raise ForkServerGone("the fork server is gone")
        pid = ascii_int(reply)
        if pid is None:
            raise ForkServerGone(f"the fork server: {reply}")
        return pid

    async def _kill(self) -> None:
        """SIGKILL the server and reap it: a request it holds dies with it."""
        self.sock.close()
        server = self.watch()
        with contextlib.suppress(ProcessLookupError):
            server.kill()
        await server.wait()

    async def close(self) -> None:
        """Close the server's socket: it exits. Reap it."""
        self.sock.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.watch().wait(), CLOSE_SECS)
            return
        await self._kill()


def fork_spawn(forks: ForkServer, arguments: Arguments, interpreter: Sequence[str]) -> Spawn:
    """Start each child from the fork server; once it fails, start them all with
    `interpreter` + arguments instead (a fresh interpreter each)."""
    fallback = exec_spawn(lambda name, fd: [*interpreter, *arguments(name, fd)])
    broken: list[str] = []

    async def spawn(name: str, link: socket.socket) -> Child:
        if not broken:
            try:
                return await forks.spawn(arguments(name, LINK_FD), link)
            except ForkServerGone as exc:
                broken.append(str(exc))
                log.error("%s: data-plane processes start unforked from now on", exc)
                # The request may have passed `link` on before it failed: a fresh one.
                raise SpawnAgain(str(exc)) from exc
        return await fallback(name, link)

    return spawn
