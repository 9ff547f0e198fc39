"""Instructions per request of a meshgate node, counted by callgrind: a figure the load of
a shared machine does not move, unlike CPU seconds.

One node (`--processes 1`) in front of nginx, run under `valgrind --tool=callgrind
--separate-threads=yes --instr-atstart=no`, for a whole chat completion and for a
streamed one (nginx answers the stream at once). Instrumentation is switched on for
--idle seconds of no load, then for --requests requests; the event-loop thread's count
less its idle rate over that window, divided by the requests, is the figure. The Raft
thread's own ticks are left out. User space only: what the kernel does for a send is not
in it (count those with `strace -c`). With --baseline-src, a node from that tree too.

Run from the repository root: `.venv/bin/python bench/instructions.py`. Needs valgrind
and nginx (`apt-get install -y valgrind nginx`). Under valgrind a node runs some 50 times
slower: a run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from common import BenchError, BenchRun, load_average, progress
from gateway_overhead import positive_int, seconds
from smg_procs import meshgate_node, start_nginx, tool
from wrk_load import BODY, CHAT_PATH

from node.localmesh import Child, LocalMesh, free_ports, stop_all

STREAM_BODY = BODY[:-1] + ', "stream": true}'


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="instructions.py", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=positive_int, default=400, metavar="N")
    parser.add_argument("--concurrency", type=positive_int, default=8, metavar="N")
    parser.add_argument("--idle", type=seconds, default=5.0, metavar="SECS")
    parser.add_argument("--baseline-src", type=Path, metavar="DIR")
    parser.add_argument("--startup-timeout", type=seconds, default=600.0, metavar="SECS")
    parser.add_argument("--keep-tmp", action="store_true")
    return parser.parse_args(argv)


async def send(url: str, count: int, body: str, concurrency: int) -> None:
    """`count` requests, `concurrency` at a time; a BenchError on any failure."""
    left = count
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(
                    url + CHAT_PATH, data=body, headers={"Content-Type": "application/json"}
                ) as answer:
                    got = await answer.read()
                    if answer.status != 200 or b"choices" not in got:
                        raise BenchError(f"{url} answered {answer.status}: {got[:200]!r}")

        await asyncio.gather(*(client() for _ in range(concurrency)))


class Counted:
    """One node run under callgrind, and what its event-loop thread runs meanwhile."""

    def __init__(self, mesh: LocalMesh, out: Path, timeout: float) -> None:
        node = mesh.nodes[0]
        node.wait_serving(60)
        node.proc.stop()  # started once for its command line; now again, under valgrind
        self.url, self.out = node.url, out
        flags = ["--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
        self.proc = Child(
            [*flags, f"--callgrind-out-file={out}", *node.proc.command],
            out.with_suffix(".log"),
            env=node.env,
            program=[tool("valgrind", "valgrind")],
            label=f"callgrind {node.name}",
        )
        deadline = time.monotonic() + timeout
        while not node.fully_ready():
            if not self.proc.alive() or time.monotonic() > deadline:
                raise BenchError(f"{node.name} under valgrind did not start:\n{self.proc.tail()}")
            time.sleep(1)

    def measure(self, work: Callable[[], object]) -> tuple[int, float]:
        """The event-loop thread's instructions while `work` runs, and its wall seconds."""
        for dump in self.out.parent.glob(self.out.name + ".*"):
            dump.unlink()
        self._control("-z")
        self._control("-i", "on")
        started = time.monotonic()
        work()
        wall = time.monotonic() - started
        self._control("-i", "off")
        self._control("-d")
        time.sleep(1)  # the dump is written by the node's own thread
        dumps = self.out.parent.glob(self.out.name + ".*-01")  # thread 1: the event loop
        return max((_total(d) for d in dumps), default=0), wall

    def _control(self, *args: str) -> None:
        command = ["callgrind_control", *args, str(self.proc.pid)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)


def _total(dump: Path) -> int:
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


def per_request(node: Counted, body: str, args: argparse.Namespace) -> float:
    """Instructions per request of the event-loop thread, its idle rate taken off."""

    def load(count: int) -> None:
        asyncio.run(send(node.url, count, body, args.concurrency))

    load(30)  # warm-up
    idle, idle_wall = node.measure(lambda: time.sleep(args.idle))
    ran, wall = node.measure(lambda: load(args.requests))
    return (ran - idle / idle_wall * wall) / args.requests


def measure(args: argparse.Namespace, tmp: Path, procs: list[Child]) -> int:
    load_before = load_average()
    port, stream_port = free_ports(2)
    procs.append(start_nginx(tmp, port, stream_port))
    builds: list[tuple[str, Path | None]] = [("meshgate", None)]
    if args.baseline_src:
        builds.append(("meshgate-baseline", args.baseline_src.resolve()))
    kinds = [("whole", port, BODY), ("stream", stream_port, STREAM_BODY)]
    rows: dict[str, dict[str, float]] = {}
    for name, src in builds:
        for kind, backend, body in kinds:
            progress(f"{name}, {kind}: starting under valgrind")
            label = f"{name}-{kind}"
            mesh = meshgate_node(tmp, label, f"http://127.0.0.1:{backend}", src, [])
            mesh.start_nodes()
            node = Counted(mesh, tmp / f"{label}.callgrind", args.startup_timeout)
            procs.append(node.proc)
            try:
                rows.setdefault(name, {})[kind] = per_request(node, body, args)
            finally:
                stop_all([node.proc])
                mesh.stop()
    print(
        f"\ninstructions per request of the event-loop thread (callgrind), {args.requests} requests"
    )
    print(f"load avg {load_before} before, {load_average()} after (it does not move these)")
    print(f"{'node':<20}{'whole':>12}{'stream':>12}")
    for name, row in rows.items():
        print(f"{name:<20}{row['whole'] / 1e6:>11.3f}M{row['stream'] / 1e6:>11.3f}M")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = BenchRun("instructions", args.keep_tmp)
    procs: list[Child] = []
    return bench(lambda: measure(args, bench.tmp, procs), lambda: stop_all(procs))


if __name__ == "__main__":
    sys.exit(main())  # BenchRun reports a BenchError and exits 1
