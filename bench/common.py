"""What the benchmarks share: errors and signals, a few measurements, and child reports.

Each benchmark starts real meshgate processes on loopback with the package's
local-mesh harness (`node.localmesh`, the one the demo and the tests use), reads
CPU time from /proc, and must leave no child behind whatever happens (errors,
Ctrl-C, SIGTERM). Run the scripts as `.venv/bin/python bench/<name>.py`; this
module sits beside them.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from node.localmesh import Child
from node.localmesh.process import LOG_TAIL_LINES

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(Exception):
    """The benchmark cannot go on; the message says why (and may carry a log tail)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM: stop measuring, stop the children, exit 130."""


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM outside the event loop: unwind like Ctrl-C so every child is stopped."""
    raise Interrupted(signal.Signals(signum).name)


async def until_sigterm(work: Awaitable[T]) -> T:
    """Await `work`; a SIGTERM meanwhile cancels it and raises Interrupted.

    While the loop runs it owns SIGTERM: the signal cancels this task, which closes the
    client sessions cleanly (raising from a plain signal handler would land inside some
    aiohttp callback and leave "exception never retrieved" noise)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    except asyncio.CancelledError:
        raise Interrupted("signal") from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # resets it to SIG_DFL: put ours back
        signal.signal(signal.SIGTERM, interrupt)


class BenchRun:
    """One run of a benchmark: its temporary directory (children's logs and data) and
    its exit status: 0 when it completed, 1 on a BenchError (the logs are kept), 130
    when interrupted. The directory is removed at the end unless `keep` (or an error)."""

    def __init__(self, name: str, keep: bool) -> None:
        self.name = name
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix=f"meshgate-{name}-"))

    def __call__(self, measure: Callable[[], int], stop: Callable[[], None]) -> int:
        """Run `measure` (its return value is the exit status), then always `stop`."""
        signal.signal(signal.SIGTERM, interrupt)
        try:
            code = measure()
            self.keep = self.keep or code != 0
            return code
        except BenchError as exc:
            self.keep = True
            print(f"{self.name}: error: {exc}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, Interrupted):
            print(f"{self.name}: interrupted; stopping the processes", file=sys.stderr)
            return 130
        finally:
            stop()
            if self.keep and any(self.tmp.iterdir()):
                progress(f"logs kept in {self.tmp}")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def cpu_seconds(child: Child) -> float | None:
    """CPU seconds a running child used so far; None once it exited."""
    return proc_cpu_seconds(child.pid) if child.alive() else None


def log_problems(child: Child) -> list[str]:
    """Lines of a child's log that look like trouble (warnings, errors, tracebacks)."""
    marks = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback", "error:")
    return [line for line in child.log().splitlines() if any(m in line for m in marks)]


def exited(child: Child, when: str) -> BenchError:
    """The error for a child that is gone `when` ("while waiting for ...", "during the run")."""
    return BenchError(
        f"{child.label} exited with status {child.popen.returncode} {when}.\n"
        f"command: {shlex.join(child.command)}\n"
        f"last {LOG_TAIL_LINES} lines of {child.log_path}:\n{child.tail()}"
    )


def check_alive(children: list[Child], when: str) -> None:
    for child in children:
        if not child.alive():
            raise exited(child, when)
