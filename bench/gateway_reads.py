"""What does read-your-writes cost? Plain and consistent reads, and writes, on a leader
and on a follower of a three-node mesh on loopback.

    .venv/bin/python bench/gateway_reads.py [--requests 300] [--keep]

Each series sends `--requests` requests one at a time (after a warm-up), over one
keep-alive connection to one node, and reports the latency percentiles:
- plain read: `GET /ha/config/{key}`, answered from the node's replica;
- consistent read: the same with `?consistent=true`. A leader that holds its lease
  answers locally; a follower first commits a read barrier (one Raft round trip);
- write: `POST /ha/config`. A write of control state is made current first, as a
  consistent read is, so on a follower it pays that round trip too.
Sequential requests show the cost of one round trip without queueing; concurrent
consistent reads on a follower share barriers (node/read_index.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests
from common import BenchRun, load_average, percentile, progress

from node.localmesh import LocalMesh

KEY = "bench-read"
Row = tuple[str, str, list[float]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="per series (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured, per series")
    parser.add_argument("--concurrency", type=int, default=8, help="clients sharing barriers")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' logs and data")
    args = parser.parse_args(argv)
    run = BenchRun("gateway-reads", args.keep)
    mesh = LocalMesh(run.tmp, node_args=["--log-level", "warning"])
    return run(lambda: measure(mesh, args), mesh.stop)


def measure(mesh: LocalMesh, args: argparse.Namespace) -> int:
    progress("starting a 3-node mesh ...")
    mesh.start()
    leader = leader_url(mesh)
    follower = next(url for url in mesh.urls if url != leader)
    requests.post(leader + "/ha/config", json={"key": KEY, "value": 0}, timeout=10)
    rows = [*node_series("leader", leader, args), *node_series("follower", follower, args)]
    report(rows, args)
    shared(follower, args)
    return 0


def node_series(role: str, url: str, args: argparse.Namespace) -> list[Row]:
    read, write = f"{url}/ha/config/{KEY}", f"{url}/ha/config"
    with requests.Session() as http:
        return [
            (role, "plain read", series(lambda: http.get(read, timeout=10), args)),
            (
                role,
                "consistent read",
                series(lambda: http.get(read + "?consistent=true", timeout=10), args),
            ),
            (role, "write", series(lambda: http.post(write, json={"key": KEY, "value": 1}), args)),
        ]


def shared(follower: str, args: argparse.Namespace) -> None:
    """Concurrent consistent reads on a follower: barriers per read (the applied index
    grows by one per barrier, and nothing else is written meanwhile) and throughput."""
    url = f"{follower}/ha/config/{KEY}?consistent=true"

    def client(_: int) -> int:
        with requests.Session() as http:
            for _ in range(args.requests // args.concurrency):
                http.get(url, timeout=10).raise_for_status()
        return args.requests // args.concurrency

    first = int(requests.get(url, timeout=10).headers["X-Meshgate-Index"])
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        sent = sum(pool.map(client, range(args.concurrency)))
    took = time.perf_counter() - started
    last = int(requests.get(url, timeout=10).headers["X-Meshgate-Index"])
    print(
        f"follower, {args.concurrency} concurrent clients: {sent} consistent reads in "
        f"{took:.2f} s ({sent / took:.0f}/s), {(last - first - 1) / sent:.2f} barriers per read"
    )


def leader_url(mesh: LocalMesh) -> str:
    for url in mesh.urls:
        if requests.get(url + "/ha/local", timeout=5).json()["role"] == "leader":
            return url
    raise SystemExit("no leader")


def series(send: Callable[[], requests.Response], args: argparse.Namespace) -> list[float]:
    """Latencies in ms of `--requests` sequential requests (after the warm-up)."""
    latencies = []
    for i in range(args.warmup + args.requests):
        started = time.perf_counter()
        resp = send()
        took = (time.perf_counter() - started) * 1000
        if resp.status_code >= 300:
            raise SystemExit(f"HTTP {resp.status_code}: {resp.text[:200]}")
        if i >= args.warmup:
            latencies.append(took)
    return latencies


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"{args.requests} sequential requests per series; load average {load_average()}")
    print(f"{'node':<10}{'request':<17}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}")
    for role, what, values in rows:
        cells = "".join(f"{percentile(values, q):>8.2f}" for q in (50, 90, 99))
        print(f"{role:<10}{what:<17}{cells}")


if __name__ == "__main__":
    sys.exit(main())
