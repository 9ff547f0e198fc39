"""How fast does a meshgate mesh commit control-plane writes, and how long do writes stall?

The benchmark starts a real three-node mesh on loopback (three `meshgate serve`
processes that agree on control state through Raft, plus one echo worker so
the nodes can report ready), drives config writes (`POST /ha/config`) at it
over HTTP, and measures four things (a fifth, partitions, runs its own mesh in
network namespaces: bench/partition_phase.py):

1. Commit latency of one write at a time, sent to a follower and to the
   leader. A follower forwards the command to the leader, which replicates it
   to a majority before the follower answers, so the follower figure is the
   cost of a write as most clients see it (two of three nodes are followers).
2. Write throughput: `--concurrency` closed-loop writers spread evenly over
   the three nodes for `--duration` seconds.
3. Failover: the leader is SIGKILLed while one writer sends a write every
   ~10 ms to a surviving node. The figure is the time from the kill to the
   acknowledgement of the first write that was *sent after the kill*: writes
   in flight at the kill may have been committed before it, so counting them
   would flatter the result; the cost is at most one write latency.
4. Rolling restart: while one writer sends writes back to back to whichever
   node is up (moving to the next node on a connection error), every node is
   restarted through `POST /ha/shutdown` (followers first, the leader last),
   and the script, acting as the supervisor, starts each one again and waits
   until another node sees it back, ready and caught up. The figure is the
   longest gap between two consecutive successful acknowledgements: the
   longest time a client could not get a write committed.

Why it is built this way:

* Real processes, real sockets, started exactly as an operator runs them, so
  the numbers include HTTP parsing, the hop from follower to leader, Raft
  replication, the journal and the apply path. Nothing is mocked.
* Latencies are measured in the client around each HTTP request, on one
  keep-alive connection per writer, so what is measured is what a client
  sees, not what a node thinks it spent.
* "Caught up" before the next restart is judged from another node's
  `/ha/status`, as an operator's tooling would: the restarted node must show
  its new boot id, ready, and an applied index within 2 of what was
  committed. A node learns its peers' applied index by polling them once a
  second, so under a continuous write load that view is up to a second old;
  it is therefore compared with the observer's commit index at the time the
  observer last heard from the node (sampled by this script), not with the
  commit index now, which would run ahead by up to a second of writes.
* A stall is only useful if you can tell what caused it. During phases 3 and 4
  the script polls every node's `/ha/local` (every `--watch-interval`) and
  records each change of Raft term, role and leader, and it timestamps its own
  supervisor actions (shutdown plan committed, exit, start, ready, caught up).
  The longest gaps are printed with what happened around them, and each
  restart step with its longest gap while the node was stopping (a leader
  hands over here) and while it was rejoining. The polling costs a few dozen
  small requests per second; `--watch-interval 0` turns it off.
* Phases 1 and 2 run on an undisturbed mesh. Phase 3 restarts the killed node
  and waits for it before the next round, and every phase starts only once
  all three nodes are ready, caught up and agree on the leader.
* At the end, with no writes in flight, the three replicas' config stores are
  compared (a cheap check that nothing diverged), and warning-or-worse lines
  in the nodes' logs are counted.
* The client, three nodes and the worker all share the machine's cores. On a
  small machine that makes absolute numbers pessimistic (every hop waits for
  a core); the report says how many cores there were.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import partition_phase
from common import (
    BenchError,
    BenchRun,
    check_alive,
    load_average,
    progress,
    until_sigterm,
)
from raft_cluster import NODE_NAMES, Api, Supervisor, bench_mesh, wait_until
from raft_phases import phase_failover, phase_latency, phase_throughput
from raft_report import log_problems, report
from raft_rolling import phase_rolling

from node.localmesh import LocalMesh, LocalMeshError

PHASES = ("latency", "throughput", "failover", "rolling", "partition")
LOOPBACK_PHASES = PHASES[:4]  # phase 5 runs its own mesh, in network namespaces


async def run(args: argparse.Namespace, mesh: LocalMesh) -> dict[str, Any]:
    """Measure every phase asked for; a SIGTERM meanwhile cancels the run."""
    return await until_sigterm(measure(args, mesh))


async def measure(args: argparse.Namespace, mesh: LocalMesh) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if any(p in LOOPBACK_PHASES for p in args.phases):
        await measure_loopback(args, mesh, results)
    if "partition" in args.phases:
        phase_start = time.perf_counter()
        results["partition"] = await asyncio.to_thread(partition_phase.run, args)
        results["partition"]["phase_seconds"] = time.perf_counter() - phase_start
    return results


async def measure_loopback(
    args: argparse.Namespace, mesh: LocalMesh, results: dict[str, Any]
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:
        api = Api(session, mesh)
        sup = Supervisor(mesh, api, args)
        started = time.perf_counter()
        try:
            await asyncio.to_thread(mesh.start_workers, args.startup_timeout)
        except LocalMeshError as exc:
            raise BenchError(str(exc)) from None
        mesh.start_nodes()
        leader = await sup.settled()
        results["startup_s"] = time.perf_counter() - started
        progress(
            f"mesh ready after {results['startup_s']:.1f} s; leader {leader}; "
            f"logs in {mesh.workdir}"
        )
        phases = {
            "latency": phase_latency,
            "throughput": phase_throughput,
            "failover": phase_failover,
            "rolling": phase_rolling,
        }
        for name in args.phases:
            if name not in phases:
                continue
            phase_start = time.perf_counter()
            results[name] = await phases[name](args, mesh, sup)
            results[name]["phase_seconds"] = time.perf_counter() - phase_start
        results["replicas"] = await compare_replicas(api, args.startup_timeout)


async def compare_replicas(api: Api, timeout: float) -> dict[str, Any]:
    """With no writes in flight: do all three replicas hold the same config keys, values and
    versions at the same applied index? (A cheap check that nothing diverged.)"""
    views: dict[str, Any] = {}

    async def check() -> str | None:
        for name in NODE_NAMES:
            try:
                code, body = await api.get(name, "/ha/config", timeout=2.0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"{name}: {type(exc).__name__}"
            if code != 200 or not isinstance(body, dict):
                return f"{name} GET /ha/config answered {code}"
            views[name] = body
        indexes = {views[n]["applied_index"] for n in NODE_NAMES}
        return None if len(indexes) == 1 else f"applied indexes differ: {sorted(indexes)}"

    try:
        await wait_until("the replicas to reach the same applied index", check, timeout)
    except BenchError as exc:
        return {"agree": False, "problem": str(exc)}
    first = views[NODE_NAMES[0]]
    differing = [n for n in NODE_NAMES[1:] if views[n]["config"] != first["config"]]
    return {
        "agree": not differing,
        "applied_index": first["applied_index"],
        "keys": len(first["config"]),
        "problem": f"config differs on {', '.join(differing)}" if differing else None,
    }


def parse_phases(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PHASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown phase(s) {', '.join(unknown) or '(none given)'}; choose from "
            + ", ".join(PHASES)
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="raft_bench.py",
        description=(
            "Start a 3-node meshgate mesh and an echo worker on loopback and measure Raft "
            "control-plane writes (POST /ha/config): sequential commit latency via a follower "
            "and via the leader, concurrent write throughput, failover time after SIGKILLing "
            "the leader, the longest write stall during a rolling restart, and (as root, in "
            "network namespaces) recovery from partitions. Prints a table "
            "with the targets (follower p50 <= 3 ms, failover median <= 1 s, no write stall "
            "> 100 ms) and PASS/MISS for each. Progress goes to stderr, the report to stdout."
        ),
        epilog=(
            "The client (this script), the three nodes and the worker share the machine's "
            "cores; on a small machine absolute numbers are pessimistic. A full default run "
            "takes about 2-3 minutes (phase 5 needs root). Exit status: 0 when the run "
            "completed (whatever PASS/MISS says), 1 on an error (logs are kept), 130 when "
            "interrupted. Every child process is stopped on the way out. See bench/README.md "
            "for how to read the output."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--writes", type=int, default=500, help="phase 1: measured sequential writes per target"
    )
    parser.add_argument(
        "--warmup-writes",
        type=int,
        default=50,
        help="phase 1: writes sent and discarded before each target's measured writes",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="phase 2: concurrent writers (closed loop)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="phase 2: measured seconds")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="phase 2: seconds of load discarded first"
    )
    parser.add_argument("--failovers", type=int, default=5, help="phase 3: leader kills (rounds)")
    parser.add_argument(
        "--failover-interval-ms",
        type=float,
        default=10.0,
        help="phase 3: the writer starts a write this often (ms); one write at a time",
    )
    parser.add_argument(
        "--failover-timeout",
        type=float,
        default=15.0,
        help="phase 3: give up on a round if no write succeeds this long after the kill (s)",
    )
    parser.add_argument(
        "--rolling-runs",
        type=int,
        default=1,
        help="phase 4: rolling restarts, one after another (each run's longest stall is shown)",
    )
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=0.05,
        help="phases 3 and 4: poll every node's /ha/local this often (s) to record changes of "
        "term, role and leader next to the stalls (0: off)",
    )
    parser.add_argument(
        "--partition-rounds",
        type=int,
        default=2,
        help="phase 5: cuts, the leader and a follower in turn",
    )
    parser.add_argument(
        "--partition-seconds", type=float, default=10.0, help="phase 5: how long each cut lasts"
    )
    parser.add_argument(
        "--partition-snapshot-gap",
        type=int,
        default=0,
        help="phase 5: the nodes' --mesh-log-compaction-entries (a follower further behind "
        "gets a snapshot); 0: their default",
    )
    parser.add_argument(
        "--partition-heal-timeout",
        type=float,
        default=60.0,
        help="phase 5: give up waiting for a healed node to catch up after this long (s)",
    )
    parser.add_argument(
        "--phases",
        type=parse_phases,
        default=",".join(PHASES),
        help="comma-separated phases to run, in order: " + ",".join(PHASES),
    )
    parser.add_argument(
        "--drain-delay",
        type=float,
        default=0.5,
        help="the nodes' --drain-delay-secs: how long a stopping node keeps serving",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=5.0,
        help="client timeout per write (s); a node gives up on a commit after 3 s (503)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        help="longest wait for a node to become ready / caught up (s)",
    )
    parser.add_argument(
        "--node-log-level",
        default="warning",
        help="the nodes' --log-level (info shows leadership and shutdown steps in their logs)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print every result as one JSON object (the last line of stdout)",
    )
    parser.add_argument(
        "--keep-tmp",
        action="store_true",
        help="keep the temporary directory (node logs, Raft journals); kept anyway on error",
    )
    args = parser.parse_args(argv)
    for name in ("writes", "concurrency", "failovers", "rolling_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = BenchRun("raft_bench", args.keep_tmp)
    mesh = bench_mesh(bench.tmp, args)

    def stop() -> None:
        progress("stopping the nodes and the worker")
        mesh.stop()

    return bench(lambda: measure_and_report(args, mesh), stop)


def measure_and_report(args: argparse.Namespace, mesh: LocalMesh) -> int:
    load_before = load_average()
    progress(f"starting an echo worker and 3 nodes (logs in {mesh.workdir})")
    results = asyncio.run(run(args, mesh))
    results["load_before"] = load_before
    results["node_log_problems"] = log_problems(mesh)
    check_alive(mesh.children(), "during the run")
    summary = report(args, mesh, results)
    if args.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
