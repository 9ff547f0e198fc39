"""How much latency and CPU does a meshgate node add in front of an inference worker?

The benchmark starts real processes on loopback: N echo workers (or uses a
backend you name with --backend-url) and one gateway node pointing at them.
It then drives the same small chat-completion load at two targets, directly
at the worker(s) and through the gateway, and reports the difference.

Why it is built this way:

* Real processes, real sockets. The gateway is started with `python -m
  node.cli serve`, exactly as an operator runs it, so the numbers include
  HTTP parsing, admission, routing, the upstream connection pool and the
  relay -- everything a request pays for -- and nothing is mocked.
* The echo worker answers in microseconds, so whatever the gateway adds is
  not hidden behind model time. Real engines take tens of milliseconds to
  seconds per request; read the added latency against that.
* A direct phase is the baseline. Both phases use the same client, the same
  connection limit, the same body and the same duration, so the only thing
  that differs is the extra hop.
* Closed-loop load: each of `--concurrency` clients sends its next request
  as soon as the previous one finished. Throughput and latency are then two
  views of the same thing (Little's law: latency ~= concurrency /
  throughput), so under load the "added latency" is mostly lost throughput
  on a CPU-bound machine. The sequential phase (one request at a time) has
  no queueing at all and is the cleanest measure of the latency one extra
  hop adds.
* Warm-up is part of each phase's run (connections are opened, caches and
  allocators warm) and its requests are discarded; only requests that
  complete inside the measured window count, and CPU is sampled at that
  window's edges, so requests, errors and CPU seconds cover the same time.
* Rounds alternate the order of the two targets (direct first, then gateway
  first, ...), so slow drift on a shared machine (other jobs, thermal or
  frequency changes) is spread over both targets instead of biasing one.
* The load generator runs in this process and shares the machine's cores
  with the servers. On a small machine that makes absolute numbers
  pessimistic, so the CPU seconds every process used are read from
  /proc/<pid>/stat and reported: gateway CPU per request is the figure that
  carries over to a bigger machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shlex
import sys
import time

import gateway_grpc
from common import BenchRun, check_alive, load_average, log_problems, progress
from gateway_load import CHAT_PATH, run_phases
from gateway_report import report
from gateway_setup import Cluster, start_cluster

# -- command line ------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gateway_overhead.py",
        description=(
            "Measure the latency, throughput and CPU a meshgate gateway node adds in front of "
            "an inference worker: the same load is sent directly to the worker(s) and through "
            "the gateway, concurrently and one request at a time, and the results are printed "
            "side by side. Starts every process it needs on loopback and stops them at the end."
        ),
        epilog=(
            "With the defaults a run takes about 80 s: 2 rounds x (2 targets x (2 s warm-up + "
            "10 s concurrent) + 2 targets x (2 s warm-up + 5 s sequential)) plus start-up. "
            "Child logs go to a temporary directory, removed after a successful run "
            "(see --keep-tmp). Exit status: 0 ok, 1 a process failed to start or a phase had "
            "no successful request, 130 interrupted."
        ),
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        default=32,
        help="requests in flight in the concurrent phases, also the client's connection limit "
        "(%(default)s)",
    )
    load.add_argument(
        "--duration",
        type=seconds,
        metavar="SECS",
        default=10.0,
        help="measured seconds per target per round, concurrent phases; 0 skips them (%(default)s)",
    )
    load.add_argument(
        "--sequential-duration",
        type=seconds,
        metavar="SECS",
        default=5.0,
        help="measured seconds per target per round, sequential phases; 0 skips them (%(default)s)",
    )
    load.add_argument(
        "--warmup",
        type=seconds,
        metavar="SECS",
        default=2.0,
        help="seconds of unmeasured load before every measured window (%(default)s)",
    )
    load.add_argument(
        "--rounds",
        type=positive_int,
        metavar="N",
        default=2,
        help="repeat every phase this often, alternating which target goes first (%(default)s)",
    )
    load.add_argument(
        "--stream",
        action="store_true",
        help='send "stream": true and measure time to the first body byte as well as total time',
    )
    load.add_argument(
        "--grpc",
        action="store_true",
        help="streaming through the gateway to an HTTP echo worker and to a grpc-echo-worker "
        "side by side (tokens/s and the gateway's CPU per request) instead of direct vs gateway",
    )
    load.add_argument(
        "--grpc-stream-interval",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --grpc: the gateway's --grpc-stream-interval, tokens per gRPC message "
        "(%(default)s)",
    )
    load.add_argument(
        "--model", default="bench-model", help="model named in the request body (%(default)s)"
    )
    load.add_argument(
        "--max-tokens",
        type=positive_int,
        metavar="N",
        default=16,
        help="max_tokens of the request body (%(default)s)",
    )
    load.add_argument(
        "--request-timeout",
        type=seconds,
        metavar="SECS",
        default=30.0,
        help="per-request timeout in seconds; a timed-out request counts as an error (%(default)s)",
    )
    setup = parser.add_argument_group("processes")
    setup.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        default=None,
        help="echo workers to start (default 1; not with --backend-url)",
    )
    setup.add_argument(
        "--backend-url",
        action="append",
        metavar="URL",
        help="use this running HTTP backend instead of echo workers (repeatable); it must "
        f"answer GET /health with 200 and POST {CHAT_PATH}; the gateway registers it as its "
        "worker and the direct phases call it",
    )
    setup.add_argument(
        "--policy",
        default="round_robin",
        help="the gateway's routing policy, its --policy (%(default)s)",
    )
    setup.add_argument(
        "--startup-timeout",
        type=seconds,
        metavar="SECS",
        default=30.0,
        help="seconds to wait for each process to become healthy or ready (%(default)s)",
    )
    setup.add_argument(
        "--keep-tmp", action="store_true", help="keep the temporary directory with the child logs"
    )
    parser.add_argument(
        "--json", action="store_true", help="also print all results as one JSON object (last line)"
    )
    args = parser.parse_args(argv)
    if args.backend_url and args.workers is not None:
        parser.error("--workers and --backend-url exclude each other")
    if args.grpc and (args.backend_url or (args.workers or 1) != 1):
        parser.error("--grpc starts its own two workers: no --backend-url or --workers")
    if args.grpc and args.duration <= 0:
        parser.error("--grpc measures concurrent streams: give --duration > 0")
    if args.workers is None:
        args.workers = 1
    if args.duration <= 0 and args.sequential_duration <= 0:
        parser.error("--duration and --sequential-duration are both 0: nothing to measure")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = BenchRun("gateway_overhead", args.keep_tmp)
    cluster = Cluster(bench.tmp, args)
    return bench(lambda: measure_and_report(args, cluster, bench), cluster.stop)


def measure_and_report(args: argparse.Namespace, cluster: Cluster, bench: BenchRun) -> int:
    load_before = load_average()
    started = time.monotonic()
    progress(f"starting processes (logs in {bench.tmp})")
    start_cluster(args, cluster)
    progress(
        f"gateway {cluster.gateway_url} ready after {time.monotonic() - started:.1f} s; "
        f"backends {' '.join(cluster.backend_urls)}"
    )
    for proc in cluster.procs():
        print(f"  {proc.label}: {shlex.join(proc.command)}", file=sys.stderr)
    if args.grpc:
        return gateway_grpc.run(args, cluster)
    phases = asyncio.run(run_phases(args, cluster))
    check_alive(cluster.procs(), "during the run")
    result = report(args, cluster, phases, load_before, time.monotonic() - started)
    for proc in cluster.procs():
        trouble = log_problems(proc)
        if trouble:
            bench.keep = True
            print(f"{proc.label} logged {len(trouble)} warning/error line(s), first ones:")
            print("\n".join("  " + line[:300] for line in trouble[:5]))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    empty = [
        f"{p.mode} {p.target}" for pair in phases.values() for p in pair.values() if p.requests == 0
    ]
    if empty:
        print(f"error: no successful request in: {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
