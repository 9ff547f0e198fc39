"""The fork server's own side: a process forked from the control process before it starts
any thread, gRPC channel, event loop or Raft object (gRPC and pysyncobj are not safe to
fork once their threads run). It has the node's modules loaded already, so each
data-plane process forked from it skips the ~1 s of CPU a fresh interpreter spends on
imports.

Each request (node/plane/forks.py sends it) is a child's `meshgate` arguments, with its
end of the supervisor's link passed along (SCM_RIGHTS). The server forks twice: the
first child forks the data-plane process and exits, so the data-plane process is
reparented to the control process, a child subreaper (`PR_SET_CHILD_SUBREAPER`): the
control process waits for it, signals it and sees it in `/proc` as it would a child it
started itself. The reply is its pid.

The server dies with the control process (`PR_SET_PDEATHSIG`, and end-of-file on its
socket), ignores the terminal's SIGINT and a process group's SIGTERM (the control process
decides when its children stop), and keeps no descriptor but its socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import random
import signal
import socket
import sys
import time
import traceback
from typing import Final, NoReturn

PR_SET_PDEATHSIG: Final = 1
PR_SET_NAME: Final = 15
LINK_FD: Final = 3  # where a forked child finds its end of the link (its --plane-link)
MOST_REQUEST: Final = 64 * 1024  # a child's arguments: the control's own, and a few more
REPARENT_SECS: Final = 2.0  # for the first fork to exit, handing its child to the control
SERVER_NAME: Final = b"meshgate-forks"  # /proc/PID/comm: tells it from a data-plane process


def _prctl(option: int, value: int | bytes) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def serve(sock: socket.socket, control_pid: int) -> NoReturn:
    """Run the fork server in this (just forked) process until the control process goes."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != control_pid:  # it died before the request above took effect
            os._exit(1)
        _prctl(PR_SET_NAME, SERVER_NAME)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        _keep_only(sock.fileno())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        import node.plane.data_process  # noqa: F401  # what only a data-plane process imports

        with contextlib.suppress(ImportError):  # the loop every child runs (node/event_loop.py)
            import uvloop  # noqa: F401

        gc.freeze()  # forked children share these pages: no collection touches them
        while True:
            _answer(sock, control_pid)
    except BaseException:  # the control's end closed, or a fault: children need a new server
        os._exit(0)


def _keep_only(fd: int) -> None:
    """Close every descriptor the control process had open, but stdio and `fd`."""
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 20)


def _answer(sock: socket.socket, control_pid: int) -> None:
    message, fds, _, _ = socket.recv_fds(sock, MOST_REQUEST, 1)
    if not message:
        os._exit(0)  # the control process closed its end: it stops, or is gone
    try:
        if len(fds) != 1:
            raise ValueError(f"a request passes one descriptor, not {len(fds)}")
        arguments = message.decode().split("\0")
        reply = str(_fork_child(arguments, fds[0], sock, control_pid))
    except Exception as exc:  # the control logs it and starts its child another way
        reply = f"error: {exc}"
    finally:
        for fd in fds:
            os.close(fd)
    sock.send(reply.encode())


def _fork_child(arguments: list[str], link: int, sock: socket.socket, control_pid: int) -> int:
    """Fork the data-plane process through a first child that exits at once, and return its
    pid once it is the control process's child."""
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.close(read_end)
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
                _run_child(arguments, link, sock, control_pid)
            os.write(write_end, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        said = os.read(read_end, 32)
    finally:
        os.close(read_end)
        os.waitpid(first, 0)  # once it is reaped, its child is the control's
    if not said:
        raise OSError("the first fork exited without forking the data-plane process")
    return int(said)


def _process_name(arguments: list[str]) -> bytes:
    """What `ps -o comm` and `top` show for a forked child (its command line is the control
    process's, forked): `meshgate-p1`."""
    name = "p?"
    if "--plane-name" in arguments[:-1]:
        name = arguments[arguments.index("--plane-name") + 1]
    return f"meshgate-{name}".encode()[:15]


def _run_child(arguments: list[str], link: int, sock: socket.socket, control_pid: int) -> NoReturn:
    """Become the data-plane process: what `python -m node.cli ARGUMENTS` would run."""
    status = 1
    try:
        sock.close()
        if link != LINK_FD:
            os.dup2(link, LINK_FD)
            os.close(link)
        # Back to the defaults of a fresh interpreter (the node sets its own handlers).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        random.seed()  # Python reseeds at fork too; a child shares no sequence with a sibling
        _prctl(PR_SET_NAME, _process_name(arguments))
        # Its parent death signal must be asked for once the control process is its parent
        # (die_with_parent, in serve_data): the first fork's exit would fire it.
        deadline = time.monotonic() + REPARENT_SECS
        while os.getppid() != control_pid:
            if time.monotonic() > deadline:
                os._exit(1)
            time.sleep(0.001)
        from node import cli

        sys.argv = [sys.argv[0], *arguments]
        status = cli.main(arguments)  # a server exits inside it, without teardown
    except SystemExit as exc:  # argparse, say
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(status)
