"""How long a node takes to start, and a data-plane process to restart, by `--processes`
(issue 15: data-plane processes forked from the fork server, node/plane/forks.py).

For each `--processes` value, `--runs` times: start one node (`meshgate serve`, its own
Raft group, no workers) and time it from the start of its process to the first
`/readiness` 200; at 2 processes or more, SIGKILL one data-plane process and time it
until `/ha/local` shows its next run ready. Prints the median and the range of each.

    .venv/bin/python bench/process_start.py --processes 1 2 3 --runs 5
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.localmesh.mesh import serve_args
from node.localmesh.process import Child, free_port

POLL_SECS = 0.02
TIMEOUT_SECS = 120.0


def until(check: Callable[[], bool]) -> float:
    """Seconds until `check()` holds (polled every POLL_SECS)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > TIMEOUT_SECS:
            raise TimeoutError("the node did not get there in time")
        time.sleep(POLL_SECS)
    return time.monotonic() - began


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def processes_shown(url: str) -> list[dict[str, object]]:
    try:
        return requests.get(url + "/ha/local", timeout=1).json()["processes"]  # type: ignore[no-any-return]
    except (requests.RequestException, ValueError, KeyError):
        return []


def one_run(processes: int, where: Path) -> tuple[float, float | None]:
    """(seconds to /readiness 200, seconds to restart a killed data-plane process)."""
    port = free_port()
    args = serve_args("b1", port, where / "data", extra=["--processes", str(processes)])
    began = time.monotonic()
    node = Child([*args, "--log-level", "warning"], where / "node.log")
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: answers(url + "/readiness"))
        started = time.monotonic() - began
        if processes < 2:
            return started, None
        victim = processes_shown(url)[0]
        os.kill(int(str(victim["pid"])), signal.SIGKILL)

        def back() -> bool:
            shown = processes_shown(url)
            first = shown[0] if shown else {}
            return first.get("pid") != victim["pid"] and bool(first.get("ready"))

        return started, until(back)
    finally:
        node.stop(timeout=20)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for processes in args.processes:
        starts: list[float] = []
        restarts: list[float] = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="meshgate-start-") as tmp:
                started, restarted = one_run(processes, Path(tmp))
            starts.append(started)
            if restarted is not None:
                restarts.append(restarted)
        line = f"--processes {processes}: start to /readiness 200 {spread(starts)}"
        if restarts:
            line += f"; a killed data-plane process ready again {spread(restarts)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
