"""raft_bench.py's phases 1 to 3: commit latency, write throughput, failover."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import time
from collections import Counter
from typing import Any

import aiohttp
from common import cpu_seconds, percentile, progress
from raft_cluster import NODE_NAMES, Attempt, Supervisor, post_write
from raft_watch import Watcher, watching

from node.localmesh import LocalMesh


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


def error_counts(attempts: list[Attempt]) -> dict[str, int]:
    return dict(Counter(f"{a.error} ({a.node})" for a in attempts if not a.ok))


def fmt_errors(errors: dict[str, int]) -> str:
    if not errors:
        return "none"
    return ", ".join(f"{kind} x{count}" for kind, count in sorted(errors.items()))


async def sequential_writes(
    session: aiohttp.ClientSession, node: str, url: str, key: str, count: int
) -> list[Attempt]:
    return [await post_write(session, node, url, key, i) for i in range(count)]


async def phase_latency(
    args: argparse.Namespace, mesh: LocalMesh, sup: Supervisor
) -> dict[str, Any]:
    leader = await sup.settled()
    follower = next(n for n in NODE_NAMES if n != leader)
    progress(
        f"phase 1: {args.writes} sequential writes to follower {follower}, then to leader {leader}"
    )
    result: dict[str, Any] = {"leader": leader, "follower": follower}
    for role, node in (("follower", follower), ("leader", leader)):
        connector = aiohttp.TCPConnector(limit=1)
        timeout = aiohttp.ClientTimeout(total=args.request_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            key = f"bench/latency/{role}"
            await sequential_writes(session, node, mesh.node(node).url, key, args.warmup_writes)
            begin = time.perf_counter()
            attempts = await sequential_writes(session, node, mesh.node(node).url, key, args.writes)
            wall = time.perf_counter() - begin
        ok = [a.latency for a in attempts if a.ok]
        result[role] = {
            "node": node,
            "writes_ok": len(ok),
            "errors": error_counts(attempts),
            "seconds": wall,
            **latency_summary(ok),
        }
    return result


async def phase_throughput(
    args: argparse.Namespace, mesh: LocalMesh, sup: Supervisor
) -> dict[str, Any]:
    await sup.settled()
    progress(
        f"phase 2: {args.concurrency} concurrent writers over 3 nodes, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s"
    )
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    attempts: list[Attempt] = []
    begin = time.perf_counter()
    start_at = begin + args.warmup
    end_at = start_at + args.duration
    cpu: dict[str, dict[str, float | None]] = {}

    def cpu_snapshot() -> dict[str, float | None]:
        snap: dict[str, float | None] = {"client": time.process_time()}
        for node in mesh.nodes:
            snap[node.name] = cpu_seconds(node.proc)
        return snap

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        cpu[name] = cpu_snapshot()

    async def writer(i: int, session: aiohttp.ClientSession) -> None:
        node = NODE_NAMES[i % len(NODE_NAMES)]
        url = mesh.node(node).url
        value = 0
        while time.perf_counter() < end_at:
            attempt = await post_write(session, node, url, f"bench/load/{i}", value)
            value += 1
            attempts.append(attempt)
            if not attempt.ok and attempt.done - attempt.sent < 0.005:
                await asyncio.sleep(0.005)  # an instant failure: do not spin

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(
            mark("start", start_at),
            mark("end", end_at),
            *(writer(i, session) for i in range(args.concurrency)),
        )
    inside = [a for a in attempts if start_at <= a.done <= end_at]
    ok = [a for a in inside if a.ok]
    window = args.duration
    node_cpu = 0.0
    cpu_known = True
    for name in NODE_NAMES:
        before, after = cpu["start"].get(name), cpu["end"].get(name)
        if before is None or after is None:
            cpu_known = False
        else:
            node_cpu += after - before
    client_cpu = (cpu["end"]["client"] or 0.0) - (cpu["start"]["client"] or 0.0)
    return {
        "concurrency": args.concurrency,
        "seconds": window,
        "writes_ok": len(ok),
        "writes_per_second": len(ok) / window if window else float("nan"),
        "errors": error_counts(inside),
        "per_node": dict(Counter(a.node for a in ok)),
        "nodes_cpu_seconds": node_cpu if cpu_known else None,
        "nodes_cpu_us_per_write": node_cpu / len(ok) * 1e6 if cpu_known and ok else None,
        "client_cpu_seconds": client_cpu,
        **latency_summary([a.latency for a in ok]),
    }


async def paced_writer(
    session: aiohttp.ClientSession,
    node: str,
    url: str,
    key: str,
    interval: float,
    stop: asyncio.Event,
    attempts: list[Attempt],
) -> None:
    """One write at a time, each started `interval` after the previous one (or at once if
    the previous one took longer)."""
    value = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at = time.perf_counter() + interval
        attempts.append(await post_write(session, node, url, key, value))
        value += 1


async def phase_failover(
    args: argparse.Namespace, mesh: LocalMesh, sup: Supervisor
) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    for r in range(args.failovers):
        leader = await sup.settled()
        followers = [n for n in NODE_NAMES if n != leader]
        survivor = followers[r % len(followers)]
        before = await sup.api.status(survivor)
        term_before = (before or {}).get("term")
        attempts: list[Attempt] = []
        stop = asyncio.Event()
        watcher = Watcher(sup.api, sup, args.watch_interval)
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1), timeout=timeout
            ) as session,
            watching(watcher),
        ):
            task = asyncio.create_task(
                paced_writer(
                    session,
                    survivor,
                    mesh.node(survivor).url,
                    "bench/failover",
                    args.failover_interval_ms / 1000,
                    stop,
                    attempts,
                )
            )
            try:
                await asyncio.sleep(0.5)  # a steady stream of writes before the kill
                victim = mesh.node(leader).proc
                killed_at = time.perf_counter()
                os.kill(victim.pid, signal.SIGKILL)
                recovered: Attempt | None = None
                deadline = killed_at + args.failover_timeout
                while recovered is None and time.perf_counter() < deadline:
                    await asyncio.sleep(0.005)
                    recovered = next((a for a in attempts if a.ok and a.sent >= killed_at), None)
                await asyncio.sleep(0.2)  # a few more writes after the recovery
            finally:
                stop.set()
                await task
        await asyncio.to_thread(victim.popen.wait, 5)
        victim.close()
        after = await sup.api.status(survivor)
        new_leader = ((after or {}).get("leader") or {}).get("name")
        term_after = (after or {}).get("term")
        recovery = recovered.done - killed_at if recovered else None
        seen = next(
            (
                c.at
                for c in watcher.changes
                if c.node == survivor and c.at >= killed_at and c.leader not in (None, leader)
            ),
            None,
        )
        failed = [a for a in attempts if not a.ok]
        in_flight = [a for a in attempts if a.sent < killed_at < a.done]
        restart_begin = time.perf_counter()
        await sup.start(leader)
        ready, back = await sup.wait_back(leader, survivor)
        rounds.append(
            {
                "killed": leader,
                "writer_to": survivor,
                "recovery_s": recovery,
                "new_leader": new_leader,
                "leader_seen_by_writer_node_s": seen - killed_at if seen else None,
                "terms": [term_before, term_after],
                "elections": term_after - term_before
                if isinstance(term_before, int) and isinstance(term_after, int)
                else None,
                "in_flight_at_kill_answered_s": in_flight[0].done - killed_at
                if in_flight
                else None,
                "failed_attempts": error_counts(failed),
                "raft_changes": [
                    f"{c.at - killed_at:+.3f}s {c.text()}"
                    for c in watcher.changes
                    if c.at >= killed_at - 0.2
                ],
                "restart_ready_s": ready,
                "restart_caught_up_s": back,
                "restart_total_s": time.perf_counter() - restart_begin,
            }
        )
        shown = f"{recovery * 1000:.0f} ms" if recovery is not None else "no recovery"
        progress(
            f"phase 3: round {r + 1}/{args.failovers}: killed leader {leader}; writes to "
            f"{survivor} resumed after {shown}; new leader {new_leader}; "
            f"{leader} restarted, ready in {ready:.1f} s, caught up in {back:.1f} s"
        )
    times = [x["recovery_s"] for x in rounds if x["recovery_s"] is not None]
    return {
        "rounds": rounds,
        "recovered": len(times),
        "median_s": statistics.median(times) if times else None,
        "min_s": min(times) if times else None,
        "max_s": max(times) if times else None,
    }
