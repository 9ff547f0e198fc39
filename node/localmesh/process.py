"""One `meshgate` child process with its output in a log file, and how to stop it for sure.

The demo, the tests and the benches all start `python -m node.cli ...` children
on this machine; this is the one place that knows how. Each child leads its own
process group (so whatever it starts goes with it, and a terminal's Ctrl-C
reaches only the parent, which stops its children in order), appends its output
to a log file that outlives it, and is stopped with SIGTERM, then SIGKILL after a
grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 40


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once, so no duplicates)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without MESHGATE_* settings (so only the flags and
    `overrides` configure a child), with unbuffered output for its log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGATE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **(overrides or {})}


class Child:
    """A `python -m node.cli ARGS` child process; its output is appended to `log_path`,
    after a line that marks the start when the log already holds an earlier run's.

    `wrap` runs it through a command that execs it in place (same pid), such as
    `ip netns exec NS`; `program` replaces `python -m node.cli` (a bench's nginx)."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        wrap: Iterable[str] = (),
        label: str = "",
        program: Sequence[str] = (),
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.label = label or " ".join(args[:1]) or "meshgate"
        self.command = [*wrap, *(program or (sys.executable, "-m", "node.cli")), *args]
        restart = log_path.exists() and log_path.stat().st_size > 0
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        if restart:  # one log for every run of a process: mark where this one starts
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._log.write(f"--- starting {self.label} at {stamp} ---\n".encode())
            self._log.flush()
        self.popen = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_environment(env),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        """Everything the child wrote so far ("" if the log cannot be read)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        kept = self.log().splitlines()[-lines:]
        return "\n".join(kept) if kept else f"(nothing in {self.log_path})"

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the child's process group, if it is still running."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def terminate(self) -> None:
        """SIGTERM without waiting (stop() waits)."""
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the child gets no chance to clean up."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL; the exit code."""
        stop_all([self], timeout)
        return self.popen.returncode

    def wait_exit(self, timeout: float = 30.0) -> int:
        code = self.popen.wait(timeout=timeout)
        self.close()
        return code

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()


def stop_all(children: Iterable[Child], grace: float = 15.0) -> None:
    """SIGTERM every child at once, wait up to `grace` seconds in all, then SIGKILL the rest."""
    children = list(children)
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.signal(signal.SIGKILL)
            child.popen.wait(timeout=10)
        child.close()
