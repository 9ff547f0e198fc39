"""raft_bench.py's phase 4: a rolling restart under writes, and where the writes stalled.

Every node is restarted through `POST /ha/shutdown` (followers first, the leader
last) while one writer sends writes back to back to whichever node is up; the
longest gap between two acknowledgements is the figure, described with what
happened around it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from common import BenchError, progress
from raft_cluster import NODE_NAMES, Attempt, Supervisor, post_write
from raft_phases import error_counts, latency_summary
from raft_watch import Watcher, elections, watching

from node.localmesh import LocalMesh


async def roaming_writer(
    session: aiohttp.ClientSession,
    mesh: LocalMesh,
    first: str,
    stop: asyncio.Event,
    attempts: list[Attempt],
) -> None:
    """Writes back to back; on a connection error move on to the next node at once."""
    index = NODE_NAMES.index(first)
    value = 0
    misses = 0
    while not stop.is_set():
        node = NODE_NAMES[index]
        attempt = await post_write(session, node, mesh.node(node).url, "bench/rolling", value)
        value += 1
        attempts.append(attempt)
        if attempt.ok:
            misses = 0
            continue
        misses += 1
        if attempt.connection_error:
            index = (index + 1) % len(NODE_NAMES)
        if misses % len(NODE_NAMES) == 0 or not attempt.connection_error:
            await asyncio.sleep(0.005)  # every node refused, or an HTTP error: do not spin


@dataclass
class Step:
    node: str
    role: str
    sent_to: str
    begin: float  # perf_counter at the shutdown request
    events: list[tuple[float, str]] = field(default_factory=list)
    exit_code: int | None = None


async def restart_one(sup: Supervisor, name: str, role: str) -> Step:
    """Shut `name` down through another node, wait for its exit, start it again, wait back."""
    others = [n for n in sup.up() if n != name]
    leader = await sup.leader(others)
    via = leader if leader in others else others[0]
    step = Step(name, role, via, time.perf_counter())
    proc = sup.mesh.node(name).proc
    deadline = time.perf_counter() + 10
    while True:
        try:
            code, body = await sup.api.post(via, "/ha/shutdown", {"target": name})
        except (aiohttp.ClientError, TimeoutError) as exc:
            code, body = 0, f"{type(exc).__name__}: {exc}"
        if code == 202:
            break
        if time.perf_counter() > deadline:
            raise BenchError(f"POST /ha/shutdown {{target: {name}}} to {via}: {code} {body}")
        await asyncio.sleep(0.1)
    step.events.append((time.perf_counter(), "shutdown plan committed (202)"))
    exit_deadline = time.perf_counter() + sup.args.drain_delay + 60
    while proc.alive():
        if time.perf_counter() > exit_deadline:
            raise BenchError(f"{name} did not exit within 60 s of its shutdown plan")
        await asyncio.sleep(0.005)
    step.exit_code = proc.popen.returncode
    step.events.append((time.perf_counter(), f"process exited ({step.exit_code})"))
    proc.close()
    await sup.start(name)
    started = time.perf_counter()
    step.events.append((started, "process started"))
    observers = [n for n in sup.up() if n != name]
    leader = await sup.leader(observers)
    observer = leader if leader in observers else observers[0]
    ready, back = await sup.wait_back(name, observer)
    step.events.append((started + ready, "/readiness 200"))
    step.events.append((started + back, f"{observer} sees it back, ready, caught up"))
    return step


async def phase_rolling(
    args: argparse.Namespace, mesh: LocalMesh, sup: Supervisor
) -> dict[str, Any]:
    """`--rolling-runs` rolling restarts, one after another: the worst run in full, and
    each run's longest stall (and the leader's hand-over stall) in `runs`."""
    runs = []
    for run in range(1, args.rolling_runs + 1):
        result = await rolling_once(args, mesh, sup, f"{run}/{args.rolling_runs}")
        runs.append(result)
        progress(
            f"phase 4: run {run}/{args.rolling_runs}: longest stall "
            f"{result['longest_stall_ms'] or 0:.1f} ms, hand-over {hand_over_ms(result):.1f} ms"
        )
    worst = max(runs, key=lambda r: r["longest_stall_ms"] or 0.0)
    summary = [
        {
            "longest_stall_ms": r["longest_stall_ms"],
            "hand_over_stall_ms": hand_over_ms(r),
            "new_terms": len(r["elections"]),
            "failed_attempts": r["failed_attempts"],
        }
        for r in runs
    ]
    return worst | {"runs": summary, "worst_run": runs.index(worst) + 1}


def hand_over_ms(result: dict[str, Any]) -> float:
    """The longest gap while the leader (the last step) was stopping: its hand-over."""
    stopping = [s["stopping"]["longest_gap_ms"] for s in result["steps"] if s["role"] == "leader"]
    return max(stopping, default=0.0)


async def rolling_once(
    args: argparse.Namespace, mesh: LocalMesh, sup: Supervisor, run: str
) -> dict[str, Any]:
    leader = await sup.settled()
    order = [n for n in NODE_NAMES if n != leader]
    progress(
        f"phase 4 (run {run}): rolling restart under writes, followers first, the leader last "
        f"(leader now: {leader}; the order is decided again before each step)"
    )
    attempts: list[Attempt] = []
    stop = asyncio.Event()
    steps: list[Step] = []
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    watcher = Watcher(sup.api, sup, args.watch_interval)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2), timeout=timeout) as session,
        watching(watcher),
    ):
        task = asyncio.create_task(roaming_writer(session, mesh, order[0], stop, attempts))
        try:
            await asyncio.sleep(0.5)
            begin = end = time.perf_counter()
            done: list[str] = []
            for _ in NODE_NAMES:
                # Recompute each time: followers not yet restarted first, the leader last.
                current = await sup.leader([n for n in sup.up()])
                remaining = [n for n in NODE_NAMES if n not in done]
                name = next((n for n in remaining if n != current), remaining[0])
                role = "leader" if name == current else "follower"
                step = await restart_one(sup, name, role)
                steps.append(step)
                done.append(name)
                took = step.events[-1][0] - step.begin
                progress(
                    f"phase 4: {name} ({role}) restarted via {step.sent_to}, back in {took:.1f} s"
                )
            end = time.perf_counter()
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await task
    return analyse_rolling(attempts, steps, watcher, begin, end)


def analyse_rolling(
    attempts: list[Attempt], steps: list[Step], watcher: Watcher, begin: float, end: float
) -> dict[str, Any]:
    changes = watcher.changes
    acks = sorted((a.done, a.node) for a in attempts if a.ok)
    events = sorted(
        [(s.begin, f"{s.node} ({s.role}): shutdown requested via {s.sent_to}") for s in steps]
        + [(t, f"{s.node} ({s.role}): {text}") for s in steps for t, text in s.events]
    )
    gaps = [(t1 - t0, t0, t1, n0, n1) for (t0, n0), (t1, n1) in itertools.pairwise(acks)]
    gaps.sort(reverse=True)
    failed = [a for a in attempts if not a.ok]

    def describe(gap: tuple[float, float, float, str, str]) -> dict[str, Any]:
        length, t0, t1, n0, n1 = gap
        before = [(t, text) for t, text in events if t <= t0]
        inside = [(t, text) for t, text in events if t0 < t <= t1]
        # The watcher sees a change up to ~0.15 s late: look a little past the gap's end.
        near = [c for c in changes if t0 - 0.05 < c.at <= t1 + 0.25]
        fails = Counter(f"{a.error} ({a.node})" for a in failed if t0 < a.done <= t1)
        last = (
            f"{before[-1][1]} ({t0 - before[-1][0]:.2f} s before)"
            if before
            else "before the first restart"
        )
        return {
            "ms": length * 1000,
            "from_s": t0 - begin,
            "to_s": t1 - begin,
            "last_ack_by": n0,
            "next_ack_by": n1,
            "after_event": last,
            "events_inside": [f"+{t - begin:.3f}s {text}" for t, text in inside],
            "raft_changes_near": [f"+{c.at - begin:.3f}s {c.text()}" for c in near],
            "failed_inside": dict(fails),
        }

    found = elections(watcher)

    def stage(start: float, stop: float) -> dict[str, Any]:
        """The longest gap overlapping (start, stop] and the new terms first seen in it."""
        longest = max((g[0] for g in gaps if g[1] < stop and g[2] > start), default=0.0)
        terms = [e["term"] for e in found if start < e["at"] <= stop]
        return {"longest_gap_ms": longest * 1000, "new_terms": terms}

    def stages(s: Step) -> dict[str, Any]:
        exited = next((t for t, text in s.events if text.startswith("process exited")), s.begin)
        back = s.events[-1][0]
        return {"stopping": stage(s.begin, exited), "rejoining": stage(exited, back)}

    in_window = [a for a in attempts if a.ok and begin <= a.done <= end]
    return {
        "writes_ok": len(acks),
        "writes_ok_during_restart": len(in_window),
        "failed_attempts": len(failed),
        "failed_by_kind": dict(Counter(a.error for a in failed)),
        "failed_by_kind_and_node": error_counts(attempts),
        "duration_s": end - begin,
        "longest_stall_ms": gaps[0][0] * 1000 if gaps else None,
        "longest_stalls": [describe(g) for g in gaps[:5]],
        "latency_ok": latency_summary([a.latency for a in attempts if a.ok]),
        "elections": [
            {k: v for k, v in e.items() if k != "at"} | {"at_s": e["at"] - begin} for e in found
        ],
        "raft_changes": [f"+{c.at - begin:.3f}s {c.text()}" for c in changes],
        "steps": [
            {
                "node": s.node,
                "role": s.role,
                "sent_to": s.sent_to,
                "exit_code": s.exit_code,
                "events": [{"at_s": t - s.begin, "what": text} for t, text in s.events],
                **stages(s),
            }
            for s in steps
        ],
    }
