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
import bisect
import contextlib
import itertools
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import partition_phase
from common import (
    LOG_TAIL_LINES,
    BenchError,
    Interrupted,
    Proc,
    free_ports,
    interrupt,
    load_average,
    percentile,
    progress,
    stop_all,
)

MODEL = "bench-model"
# One random secret per run: a mesh never runs without one.
MESH_SECRET = "bench-" + secrets.token_urlsafe(48)  # never "-…", which argparse reads as an option
NODE_NAMES = ("n1", "n2", "n3")
JSON_HEADERS = {"Content-Type": "application/json"}
CAUGHT_UP_SLACK = 2  # applied_index >= commit_index - 2, as `meshgate cluster` uses

TARGET_FOLLOWER_P50_MS = 3.0
TARGET_FAILOVER_MEDIAN_S = 1.0
TARGET_STALL_MS = 100.0


@dataclass(frozen=True)
class NodeSpec:
    name: str
    http_port: int
    raft_port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def raft_address(self) -> str:
        return f"127.0.0.1:{self.raft_port}"


class Mesh:
    """The worker and the three nodes: their fixed ports and data dirs, and their processes."""

    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        ports = free_ports(1 + 2 * len(NODE_NAMES))
        self.worker_url = f"http://127.0.0.1:{ports[0]}"
        self.worker_port = ports[0]
        self.specs = {
            name: NodeSpec(
                name=name,
                http_port=ports[1 + 2 * i],
                raft_port=ports[2 + 2 * i],
                data_dir=tmp / name,
                log_path=tmp / f"{name}.log",
            )
            for i, name in enumerate(NODE_NAMES)
        }
        self.worker: Proc | None = None
        self.procs: dict[str, Proc] = {}
        self.starts: Counter[str] = Counter()

    def url(self, name: str) -> str:
        return self.specs[name].url

    def start_worker(self) -> Proc:
        self.worker = Proc(
            f"echo worker :{self.worker_port}",
            [
                "echo-worker",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.worker_port),
                "--model",
                MODEL,
            ],
            self.tmp / "worker.log",
        )
        return self.worker

    def node_args(self, name: str) -> list[str]:
        spec = self.specs[name]
        peers = [s.raft_address for s in self.specs.values() if s.name != name]
        return [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(spec.http_port),
            "--node-name",
            name,
            "--data-dir",
            str(spec.data_dir),
            "--mesh-bind",
            spec.raft_address,
            "--mesh-peers",
            *peers,
            "--mesh-secret",
            MESH_SECRET,
            "--worker-urls",
            self.worker_url,
            "--drain-delay-secs",
            str(self.args.drain_delay),
            "--log-level",
            self.args.node_log_level,
        ]

    def start_node(self, name: str) -> Proc:
        old = self.procs.get(name)
        if old is not None:
            if old.alive():
                raise BenchError(f"{name} is still running; cannot start it again")
            old.close()
        self.starts[name] += 1
        proc = Proc(
            f"node {name} (start #{self.starts[name]})", self.node_args(name), self.log(name)
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.specs[name].log_path

    def all_procs(self) -> list[Proc]:
        return list(self.procs.values()) + ([self.worker] if self.worker else [])

    def stop(self) -> None:
        stop_all(list(self.procs.values()))  # nodes first: they never see the worker vanish
        if self.worker is not None:
            stop_all([self.worker])


# -- HTTP ----------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One write: when it was sent and answered (perf_counter seconds), where, and how."""

    sent: float
    done: float
    node: str
    ok: bool
    error: str | None = None  # "HTTP 503", "ClientConnectorError", ...
    connection_error: bool = False

    @property
    def latency(self) -> float:
        return self.done - self.sent


async def post_write(
    session: aiohttp.ClientSession, node: str, url: str, key: str, value: int
) -> Attempt:
    """Send one config write; never raises (except cancellation)."""
    body = json.dumps({"key": key, "value": value}).encode()
    sent = time.perf_counter()
    try:
        async with session.post(url + "/ha/config", data=body, headers=JSON_HEADERS) as resp:
            answer = await resp.read()
            done = time.perf_counter()
            if resp.status != 200:
                return Attempt(sent, done, node, False, f"HTTP {resp.status}")
            if b'"committed"' not in answer:
                return Attempt(sent, done, node, False, "200 without status committed")
            return Attempt(sent, done, node, True)
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return Attempt(sent, time.perf_counter(), node, False, kind, connection_error=True)
    except aiohttp.ClientError as exc:
        return Attempt(sent, time.perf_counter(), node, False, type(exc).__name__)


class Api:
    """The supervisor's own short polls (its own session, apart from the writers')."""

    def __init__(self, session: aiohttp.ClientSession, mesh: Mesh) -> None:
        self.session = session
        self.mesh = mesh
        # (wall time just before asking, node asked, its commit index) for every /ha/status read
        self.commit_samples: dict[str, list[tuple[float, int]]] = {n: [] for n in NODE_NAMES}

    async def get(self, name: str, path: str, timeout: float = 1.0) -> tuple[int, Any]:
        async with self.session.get(
            self.mesh.url(name) + path, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            body = await resp.read()
            try:
                return resp.status, json.loads(body)
            except ValueError:
                return resp.status, body[:300].decode(errors="replace")

    async def status(self, name: str) -> dict[str, Any] | None:
        asked = time.time()
        try:
            code, body = await self.get(name, "/ha/status")
        except (aiohttp.ClientError, TimeoutError):
            return None
        if code != 200 or not isinstance(body, dict):
            return None
        samples = self.commit_samples[name]
        samples.append((asked, int(body["commit_index"])))
        del samples[:-2000]
        return body

    def commit_at(self, name: str, wall: float) -> int | None:
        """The commit index node `name` reported in our last read taken before `wall`."""
        samples = self.commit_samples[name]
        i = bisect.bisect_right(samples, (wall, float("inf"))) - 1
        return samples[i][1] if i >= 0 else None

    async def ready(self, name: str) -> str | None:
        try:
            code, body = await self.get(name, "/readiness")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{name}: {type(exc).__name__}"
        return None if code == 200 else f"{name} /readiness {code}: {body}"

    async def post(self, name: str, path: str, data: dict[str, Any]) -> tuple[int, Any]:
        async with self.session.post(
            self.mesh.url(name) + path,
            data=json.dumps(data).encode(),
            headers=JSON_HEADERS,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp:
            body = await resp.read()
            try:
                return resp.status, json.loads(body)
            except ValueError:
                return resp.status, body[:300].decode(errors="replace")


async def wait_until(
    what: str,
    check: Callable[[], Awaitable[str | None]],
    timeout: float,
    procs: list[Proc] | None = None,
    interval: float = 0.02,
) -> float:
    """Poll `check` (None = done, else why not yet) until `timeout`; fail early if a proc died.

    Returns the seconds it took."""
    start = time.perf_counter()
    last = "not checked yet"
    while True:
        for proc in procs or []:
            if not proc.alive():
                raise BenchError(
                    f"{proc.label} exited with status {proc.popen.returncode} while waiting "
                    f"for {what}.\ncommand: {shlex.join(proc.command)}\n"
                    f"last {LOG_TAIL_LINES} lines of {proc.log_path}:\n{proc.tail()}"
                )
        problem = await check()
        if problem is None:
            return time.perf_counter() - start
        last = problem
        if time.perf_counter() - start >= timeout:
            tails = "".join(
                f"\nlast {LOG_TAIL_LINES} lines of {p.log_path}:\n{p.tail()}" for p in procs or []
            )
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} ({last}){tails}")
        await asyncio.sleep(interval)


def caught_up_problem(
    api: Api, observer: str, status: dict[str, Any], name: str, boot_id: str
) -> str | None:
    """None if `observer`'s /ha/status shows `name` back (new boot id), ready and caught up."""
    entry = next((n for n in status["nodes"] if n.get("name") == name), None)
    if entry is None:
        return f"{observer} does not list {name}"
    if entry.get("boot_id") != boot_id:
        return f"{observer} still sees {name}'s previous boot id"
    if entry.get("status") != "alive" or not entry.get("ready"):
        return f"{observer} sees {name} {entry.get('status')}, ready={entry.get('ready')}"
    applied = entry.get("applied_index")
    if applied is None or entry.get("last_contact") is None:
        return f"{observer} has no applied index for {name} yet"
    # The view is from the observer's last poll of `name` (up to ~1 s old): compare it with
    # what the observer had committed by then, not with its commit index now.
    committed = api.commit_at(observer, float(entry["last_contact"]))
    if committed is None:
        committed = int(status["commit_index"])
    if applied < committed - CAUGHT_UP_SLACK:
        return f"{name} applied {applied}, {observer} had committed {committed}"
    return None


class Supervisor:
    """Starts, stops and watches the nodes (everything the phases need besides writing)."""

    def __init__(self, mesh: Mesh, api: Api, args: argparse.Namespace) -> None:
        self.mesh = mesh
        self.api = api
        self.args = args

    def up(self) -> list[str]:
        return [n for n in NODE_NAMES if n in self.mesh.procs and self.mesh.procs[n].alive()]

    async def settled(self) -> str:
        """Wait until all three nodes are ready and every node sees the same leader and all
        three current boots; return the leader's name."""
        leader: list[str] = []

        async def check() -> str | None:
            boots = {}
            for name in NODE_NAMES:
                problem = await self.api.ready(name)
                if problem:
                    return problem
                status = await self.api.status(name)
                if status is None:
                    return f"{name} /ha/status unavailable"
                boots[name] = status["boot_id"]
            leaders = set()
            for name in NODE_NAMES:
                status = await self.api.status(name)
                if status is None or not status.get("leader"):
                    return f"{name} knows no leader"
                leaders.add(status["leader"]["name"])
                for other in NODE_NAMES:
                    if other != name:
                        problem = caught_up_problem(self.api, name, status, other, boots[other])
                        if problem:
                            return problem
            if len(leaders) != 1 or None in leaders:
                return f"nodes disagree about the leader: {sorted(map(str, leaders))}"
            leader[:] = [leaders.pop()]
            return None

        await wait_until(
            "all three nodes ready, caught up and agreeing on a leader",
            check,
            self.args.startup_timeout,
            list(self.mesh.procs.values()),
            interval=0.05,
        )
        return leader[0]

    async def leader(self, ask: list[str]) -> str | None:
        for name in ask:
            status = await self.api.status(name)
            if status and status.get("leader"):
                return str(status["leader"]["name"])
        return None

    async def start(self, name: str) -> Proc:
        # Popen forks: do it off the loop so a writer running alongside is not held up.
        return await asyncio.to_thread(self.mesh.start_node, name)

    async def wait_back(self, name: str, observer: str) -> tuple[float, float]:
        """After (re)starting `name`: seconds until /readiness is 200, then until `observer`
        sees it back, ready and caught up (each from the call)."""
        proc = self.mesh.procs[name]
        begin = time.perf_counter()
        await wait_until(
            f"{name} /readiness to answer 200",
            lambda: self.api.ready(name),
            self.args.startup_timeout,
            [proc],
        )
        ready = time.perf_counter() - begin
        own = await self.api.status(name)
        if own is None:
            raise BenchError(f"{name} is ready but /ha/status does not answer")
        boot_id = str(own["boot_id"])

        async def check() -> str | None:
            status = await self.api.status(observer)
            if status is None:
                return f"{observer} /ha/status unavailable"
            return caught_up_problem(self.api, observer, status, name, boot_id)

        await wait_until(
            f"{observer} to see {name} back, ready and caught up",
            check,
            self.args.startup_timeout,
            [proc, self.mesh.procs[observer]],
        )
        return ready, time.perf_counter() - begin


@dataclass(frozen=True)
class Change:
    at: float  # perf_counter when seen
    node: str
    term: int | None
    role: str | None
    leader: str | None
    restarted: bool

    def text(self) -> str:
        return (
            f"{self.node} sees term {self.term}, is {self.role}, leader {self.leader or 'none'}"
            + (" (new boot)" if self.restarted else "")
        )


class Watcher:
    """Polls every running node's `/ha/local` and records each change of term, role or leader.

    A node refreshes that view on its Raft thread every 0.1 s, so changes are seen up to
    ~0.1 s + one poll interval late: enough to tell an election from a slow exit."""

    def __init__(self, api: Api, sup: Supervisor, interval: float) -> None:
        self.api = api
        self.sup = sup
        self.interval = interval
        self.changes: list[Change] = []
        self.first_terms: list[int] = []  # each node's term at the first look
        self._last: dict[str, tuple[Any, ...]] = {}
        self._names = {spec.raft_address: spec.name for spec in sup.mesh.specs.values()}

    async def run(self, stop: asyncio.Event) -> None:
        if self.interval <= 0:
            return
        while not stop.is_set():
            await asyncio.gather(*(self._poll(n) for n in self.sup.up()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def _poll(self, name: str) -> None:
        try:
            code, body = await self.api.get(name, "/ha/local", timeout=0.5)
        except (aiohttp.ClientError, TimeoutError):
            return
        if code != 200 or not isinstance(body, dict):
            return
        raw_leader = body.get("leader")
        leader = self._names.get(raw_leader, raw_leader) if raw_leader else None
        state = (body.get("boot_id"), body.get("term"), body.get("role"), leader)
        previous = self._last.get(name)
        if state == previous:
            return
        self._last[name] = state
        if previous is None and isinstance(state[1], int):
            self.first_terms.append(state[1])
        if previous is not None:  # the first look at a node is no change
            self.changes.append(
                Change(
                    time.perf_counter(),
                    name,
                    state[1],
                    state[2],
                    leader,
                    restarted=previous[0] != state[0],
                )
            )


@contextlib.asynccontextmanager
async def watching(watcher: Watcher) -> AsyncIterator[Watcher]:
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        yield watcher
    finally:
        stop.set()
        await task


# -- statistics -------------------------------------------------------------------------------


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


# -- phase 1: sequential commit latency ------------------------------------------------------


async def sequential_writes(
    session: aiohttp.ClientSession, node: str, url: str, key: str, count: int
) -> list[Attempt]:
    return [await post_write(session, node, url, key, i) for i in range(count)]


async def phase_latency(args: argparse.Namespace, mesh: Mesh, sup: Supervisor) -> dict[str, Any]:
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
            await sequential_writes(session, node, mesh.url(node), key, args.warmup_writes)
            begin = time.perf_counter()
            attempts = await sequential_writes(session, node, mesh.url(node), key, args.writes)
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


# -- phase 2: throughput ------------------------------------------------------------------------


async def phase_throughput(args: argparse.Namespace, mesh: Mesh, sup: Supervisor) -> dict[str, Any]:
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
        for name, proc in mesh.procs.items():
            snap[name] = proc.cpu_seconds()
        return snap

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        cpu[name] = cpu_snapshot()

    async def writer(i: int, session: aiohttp.ClientSession) -> None:
        node = NODE_NAMES[i % len(NODE_NAMES)]
        url = mesh.url(node)
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


# -- phase 3: failover --------------------------------------------------------------------------


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


async def phase_failover(args: argparse.Namespace, mesh: Mesh, sup: Supervisor) -> dict[str, Any]:
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
                    mesh.url(survivor),
                    "bench/failover",
                    args.failover_interval_ms / 1000,
                    stop,
                    attempts,
                )
            )
            try:
                await asyncio.sleep(0.5)  # a steady stream of writes before the kill
                victim = mesh.procs[leader]
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


# -- phase 4: rolling restart -------------------------------------------------------------------


async def roaming_writer(
    session: aiohttp.ClientSession,
    mesh: Mesh,
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
        attempt = await post_write(session, node, mesh.url(node), "bench/rolling", value)
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
    proc = sup.mesh.procs[name]
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


async def phase_rolling(args: argparse.Namespace, mesh: Mesh, sup: Supervisor) -> dict[str, Any]:
    leader = await sup.settled()
    order = [n for n in NODE_NAMES if n != leader]
    progress(
        f"phase 4: rolling restart under writes, followers first, the leader last (leader now: "
        f"{leader}; the order is decided again before each step)"
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


def elections(watcher: Watcher) -> list[dict[str, Any]]:
    """Each term newer than the watcher's first look that got a leader, when first seen."""
    baseline = max(watcher.first_terms, default=0)
    seen: dict[int, Change] = {}
    for c in watcher.changes:
        if c.term is not None and c.term > baseline and c.leader and c.term not in seen:
            seen[c.term] = c
    return [
        {"term": term, "leader": c.leader, "at": c.at, "seen_by": c.node}
        for term, c in sorted(seen.items())
    ]


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


# -- running and reporting ----------------------------------------------------------------------


PHASES = ("latency", "throughput", "failover", "rolling", "partition")
LOOPBACK_PHASES = PHASES[:4]  # phase 5 runs its own mesh, in network namespaces


async def run(args: argparse.Namespace, mesh: Mesh) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await measure(args, mesh)
    except asyncio.CancelledError:
        raise Interrupted("signal") from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, interrupt)


async def measure(args: argparse.Namespace, mesh: Mesh) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if any(p in LOOPBACK_PHASES for p in args.phases):
        await measure_loopback(args, mesh, results)
    if "partition" in args.phases:
        phase_start = time.perf_counter()
        results["partition"] = await asyncio.to_thread(partition_phase.run, args)
        results["partition"]["phase_seconds"] = time.perf_counter() - phase_start
    return results


async def measure_loopback(args: argparse.Namespace, mesh: Mesh, results: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:
        api = Api(session, mesh)
        sup = Supervisor(mesh, api, args)
        started = time.perf_counter()
        worker = mesh.start_worker()

        async def worker_up() -> str | None:
            try:
                async with session.get(mesh.worker_url + "/health") as resp:
                    return None if resp.status == 200 else f"worker /health {resp.status}"
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        await wait_until("the echo worker", worker_up, args.startup_timeout, [worker])
        for name in NODE_NAMES:
            mesh.start_node(name)
        leader = await sup.settled()
        results["startup_s"] = time.perf_counter() - started
        progress(
            f"mesh ready after {results['startup_s']:.1f} s; leader {leader}; logs in {mesh.tmp}"
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


_LOG_MARKS = (" CRITICAL ", " ERROR ", " WARNING ", "Traceback")


def log_problems(mesh: Mesh) -> dict[str, dict[str, int]]:
    """Per node: warning-or-worse log lines, grouped by message with the numbers blanked."""
    found: dict[str, dict[str, int]] = {}
    for name in NODE_NAMES:
        try:
            text = mesh.log(name).read_text(errors="replace")
        except OSError:
            continue
        kinds: Counter[str] = Counter()
        for line in text.splitlines():
            if any(mark in line for mark in _LOG_MARKS):
                message = line.split(" ", 2)[-1] if line[:2].isdigit() else line
                kinds[re.sub(r"\d+", "N", message)[:160]] += 1
        if kinds:
            found[name] = dict(kinds)
    return found


def ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def report(args: argparse.Namespace, mesh: Mesh, results: dict[str, Any]) -> dict[str, Any]:
    cores = os.cpu_count() or 0
    out: list[str] = []
    add = out.append
    add("== meshgate Raft benchmark ==")
    add(f"command: {shlex.join([sys.executable, *sys.argv])}")
    add(
        f"machine: {cores} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average {results['load_before']} before, "
        f"{load_average()} after"
    )
    add(
        f"note: the client (this script), the three nodes and the echo worker all share these "
        f"{cores} cores, so every hop may wait for a core; absolute figures are pessimistic."
    )
    if "startup_s" in results:
        add(
            f"mesh: 3 voters on loopback, drain delay {args.drain_delay:g} s; ready after "
            f"{results['startup_s']:.1f} s"
        )
    targets: list[tuple[str, str, str, bool | None]] = []

    lat = results.get("latency")
    if lat:
        add("")
        add(f"== 1. Commit latency, sequential writes ({args.writes} each, keep-alive) ==")
        add(
            f"{'target':<20}{'ok':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'mean ms':>9}  errors"
        )
        for role in ("follower", "leader"):
            r = lat[role]
            add(
                f"{role + ' ' + r['node']:<20}{r['writes_ok']:>6}{ms(r['p50_ms']):>9}"
                f"{ms(r['p90_ms']):>9}{ms(r['p99_ms']):>9}{ms(r['max_ms']):>9}"
                f"{ms(r['mean_ms']):>9}  {fmt_errors(r['errors'])}"
            )
        p50 = lat["follower"]["p50_ms"]
        targets.append(
            (
                "follower write p50",
                f"<= {TARGET_FOLLOWER_P50_MS:g} ms",
                f"{ms(p50)} ms",
                p50 <= TARGET_FOLLOWER_P50_MS if p50 == p50 else None,
            )
        )

    thr = results.get("throughput")
    if thr:
        add("")
        add(
            f"== 2. Throughput: {thr['concurrency']} concurrent writers over 3 nodes, "
            f"{thr['seconds']:g} s =="
        )
        add(f"writes/s          {thr['writes_per_second']:.1f}  ({thr['writes_ok']} ok)")
        add(
            f"latency ms        p50 {ms(thr['p50_ms'])}  p90 {ms(thr['p90_ms'])}  "
            f"p99 {ms(thr['p99_ms'])}  max {ms(thr['max_ms'])}"
        )
        add(f"errors            {fmt_errors(thr['errors'])}")
        per_node = ", ".join(f"{n} {c}" for n, c in sorted(thr["per_node"].items()))
        add(f"ok per node       {per_node}")
        if thr["nodes_cpu_us_per_write"] is not None:
            add(
                f"CPU               nodes {thr['nodes_cpu_seconds'] / thr['seconds']:.2f} cores "
                f"({thr['nodes_cpu_us_per_write']:.0f} µs per write, 3 nodes together), client "
                f"{thr['client_cpu_seconds'] / thr['seconds']:.2f} cores"
            )

    fo = results.get("failover")
    if fo:
        add("")
        add(
            f"== 3. Failover: leader SIGKILLed, one write every {args.failover_interval_ms:g} ms "
            f"to a surviving node =="
        )
        add(
            f"{'round':<6}{'killed':<7}{'writer':<7}{'recovery ms':>12}{'leader seen ms':>15}"
            f"{'new leader':>11}{'terms':>7}{'restart ready s':>16}{'caught up s':>12}"
            "  failed attempts"
        )
        for i, r in enumerate(fo["rounds"], 1):
            rec, seen = r["recovery_s"], r["leader_seen_by_writer_node_s"]
            add(
                f"{i:<6}{r['killed']:<7}{r['writer_to']:<7}"
                f"{(f'{rec * 1000:.0f}' if rec is not None else 'none'):>12}"
                f"{(f'{seen * 1000:.0f}' if seen is not None else '-'):>15}"
                f"{r['new_leader'] or '?':>11}{r['elections']!s:>7}"
                f"{r['restart_ready_s']:>16.2f}{r['restart_caught_up_s']:>12.2f}"
                f"  {fmt_errors(r['failed_attempts'])}"
            )
        if fo["median_s"] is not None:
            add(
                f"recovery: median {fo['median_s'] * 1000:.0f} ms, min {fo['min_s'] * 1000:.0f} "
                f"ms, max {fo['max_s'] * 1000:.0f} ms ({fo['recovered']} of "
                f"{len(fo['rounds'])} rounds recovered)"
            )
        add(
            "recovery: from the kill to the answer to the first write sent after it; leader seen:"
            " when the writer's node first reported a new leader (/ha/local, ~0.1 s resolution);"
            " terms: new Raft terms it took (1 = one clean election)"
        )
        med = fo["median_s"]
        all_recovered = fo["recovered"] == len(fo["rounds"])
        targets.append(
            (
                "failover, median",
                f"<= {TARGET_FAILOVER_MEDIAN_S:g} s",
                f"{med * 1000:.0f} ms" if med is not None else "no recovery",
                (med <= TARGET_FAILOVER_MEDIAN_S and all_recovered) if med is not None else False,
            )
        )

    rr = results.get("rolling")
    if rr:
        add("")
        add("== 4. Rolling restart under continuous writes (followers first, leader last) ==")
        add(
            f"{'step':<6}{'node':<6}{'role':<10}{'via':<5}{'exit':>5}  timeline (s after the "
            "shutdown request)"
        )
        for i, s in enumerate(rr["steps"], 1):
            line = "; ".join(f"{e['at_s']:.2f} {e['what']}" for e in s["events"])
            add(
                f"{i:<6}{s['node']:<6}{s['role']:<10}{s['sent_to']:<5}{s['exit_code']!s:>5}  {line}"
            )
        add("per step: the longest gap between acknowledgements that overlaps each stage (ms),")
        add("and the new Raft terms seen in it; stopping = shutdown request -> exit (a leader")
        add("hands over here), rejoining = exit -> restarted, ready and caught up:")
        for i, s in enumerate(rr["steps"], 1):
            parts = []
            for name in ("stopping", "rejoining"):
                st = s[name]
                terms = ",".join(map(str, st["new_terms"])) or "none"
                parts.append(f"{name} {st['longest_gap_ms']:7.1f} ms, new terms: {terms:<8}")
            add(f"  {i}. {s['node']} ({s['role']}): " + "   ".join(parts))
        add(
            f"total duration    {rr['duration_s']:.1f} s (first shutdown request to the last "
            "node caught up)"
        )
        add(
            f"writes ok         {rr['writes_ok']} ({rr['writes_ok_during_restart']} during the "
            f"restarts); latency p50 {ms(rr['latency_ok']['p50_ms'])} ms, "
            f"p99 {ms(rr['latency_ok']['p99_ms'])} ms"
        )
        add(
            f"failed attempts   {rr['failed_attempts']}: "
            f"{fmt_errors(rr['failed_by_kind_and_node'])}"
        )
        stall = rr["longest_stall_ms"]
        terms = ", ".join(
            f"term {e['term']} leader {e['leader']} at +{e['at_s']:.2f} s" for e in rr["elections"]
        )
        add(f"new Raft terms    {len(rr['elections'])}: {terms or 'none seen'}")
        add(f"longest stall     {ms(stall, 1)} ms")
        add("longest gaps between acknowledgements (s after the first shutdown request):")
        for g in rr["longest_stalls"]:
            detail = f"after: {g['after_event']}"
            if g["events_inside"]:
                detail += "; during: " + "; ".join(g["events_inside"])
            if g["raft_changes_near"]:
                detail += "; Raft views around it: " + "; ".join(g["raft_changes_near"])
            if g["failed_inside"]:
                detail += "; failed: " + fmt_errors(g["failed_inside"])
            add(
                f"  {g['ms']:8.1f} ms  +{g['from_s']:.3f} -> +{g['to_s']:.3f}  "
                f"acks by {g['last_ack_by']} -> {g['next_ack_by']}; {detail}"
            )
        targets.append(
            (
                "rolling restart, longest write stall",
                f"<= {TARGET_STALL_MS:g} ms",
                f"{ms(stall, 1)} ms",
                stall <= TARGET_STALL_MS if stall is not None else None,
            )
        )

    add("")
    rep = results.get("replicas")
    if rep:
        if rep["agree"]:
            add(
                f"replicas agree: yes ({rep['keys']} config keys, identical on all three nodes "
                f"at applied index {rep['applied_index']})"
            )
        else:
            add(f"replicas agree: NO ({rep['problem']})")
    problems = results.get("node_log_problems") or {}
    if problems:
        total = sum(sum(k.values()) for k in problems.values())
        add(f"node logs: {total} warning-or-worse line(s) (numbers shown as N):")
        merged: Counter[str] = Counter()
        for kinds in problems.values():
            merged.update(kinds)
        for message, count in merged.most_common(5):
            add(f"  {count:5d} x {message}")
    else:
        add("node logs: no warning-or-worse lines")

    if "partition" in results:
        partition_phase.report(results["partition"], add)

    add("")
    add("== Targets ==")
    add(f"{'measure':<40}{'target':<12}{'measured':<14}result")
    for what, target, measured, ok in targets:
        add(f"{what:<40}{target:<12}{measured:<14}{verdict(ok)}")
    print("\n".join(out), flush=True)
    return {
        "config": {k: v for k, v in vars(args).items()},
        "machine": {
            "cores": cores,
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "load_before": results["load_before"],
            "load_after": load_average(),
        },
        "results": results,
        "targets": [
            {"measure": w, "target": t, "measured": m, "result": verdict(ok)}
            for w, t, m, ok in targets
        ],
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
    for name in ("writes", "concurrency", "failovers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="meshgate-raft-bench-"))
    mesh = Mesh(tmp, args)
    keep = args.keep_tmp
    load_before = load_average()
    try:
        progress(f"starting an echo worker and 3 nodes (logs in {tmp})")
        results = asyncio.run(run(args, mesh))
        results["load_before"] = load_before
        results["node_log_problems"] = log_problems(mesh)
        for proc in mesh.all_procs():
            if not proc.alive():
                raise BenchError(
                    f"{proc.label} died during the run (status {proc.popen.returncode}); "
                    f"last lines of {proc.log_path}:\n{proc.tail()}"
                )
        summary = report(args, mesh, results)
        if args.json:
            print(json.dumps(summary, sort_keys=True, default=str))
        return 0
    except BenchError as exc:
        keep = True
        print(f"raft_bench: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("raft_bench: interrupted; stopping the processes", file=sys.stderr)
        return 130
    finally:
        progress("stopping the nodes and the worker")
        mesh.stop()
        if keep and any(tmp.iterdir()):
            progress(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
