"""What both benchmarks share: the children they start, and a few measurements.

Each benchmark starts real `python -m node.cli ...` processes on loopback, logs
each child's output to a file, reads CPU time from /proc, and must leave no
child behind whatever happens (errors, Ctrl-C, SIGTERM). Run the scripts as
`.venv/bin/python bench/<name>.py`; this module sits beside them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 40
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(Exception):
    """The benchmark cannot go on; the message says why (and may carry a log tail)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM: stop measuring, stop the children, exit 130."""


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM outside the event loop: unwind like Ctrl-C so every child is stopped."""
    raise Interrupted(signal.Signals(signum).name)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once, so no duplicates)."""
    socks = []
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


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it start past the last ")".
    rest = stat[stat.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime + stime, fields 14 and 15


def child_environment() -> dict[str, str]:
    """This environment without MESHGATE_* settings, so only our flags configure a node."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


class Proc:
    """A `python -m node.cli ...` child; its output is appended to a log file."""

    def __init__(
        self, label: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.label = label
        self.args = args
        self.log_path = log_path
        self.command = [sys.executable, "-m", "node.cli", *args]
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"--- bench: starting {label} at {stamp} ---\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**child_environment(), **(env or {})},
            start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop the children
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.alive() else None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc.strerror})"
        kept = text.splitlines()[-lines:]
        return "\n".join(kept) if kept else "(log is empty)"

    def problems(self) -> list[str]:
        """Log lines that look like trouble (warnings, errors, tracebacks)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        marks = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback", "error:")
        return [line for line in text.splitlines() if any(m in line for m in marks)]

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
        self.popen.wait(timeout=5)
        self.close()

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL."""
        stop_all([self], grace)


def stop_all(procs: list[Proc], grace: float = 15.0) -> None:
    """SIGTERM every process at once, wait up to `grace` seconds in all, then SIGKILL."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(OSError):
                proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            progress(f"{proc.label} ignored SIGTERM for {grace:.0f}s; killing it")
            with contextlib.suppress(Exception):
                proc.kill()
        proc.close()
