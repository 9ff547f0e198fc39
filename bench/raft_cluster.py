"""raft_bench.py's mesh and what drives it: the writes, the polls, the supervisor.

The three nodes and the echo worker are a `node.localmesh.LocalMesh`, started as
the demo and the tests start theirs. On top of it: one config write as a client
sends it (`post_write`, timed around the request), the supervisor's own polls
(`Api`, which also samples every node's commit index for the caught-up rule), and
the `Supervisor` that restarts nodes and waits until they are back and caught up.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from common import BenchError, exited

from node.localmesh import Child, LocalMesh, LocalMeshError

MODEL = "bench-model"
NODE_NAMES = ("n1", "n2", "n3")
JSON_HEADERS = {"Content-Type": "application/json"}
CAUGHT_UP_SLACK = 2  # applied_index >= commit_index - 2, as `meshgate cluster` uses


def bench_mesh(tmp: Path, args: argparse.Namespace) -> LocalMesh:
    """The worker and the three nodes (not started): fixed ports and data dirs under `tmp`."""
    flags = ["--drain-delay-secs", str(args.drain_delay), "--log-level", args.node_log_level]
    return LocalMesh(tmp, names=NODE_NAMES, model=MODEL, node_args=flags)


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

    def __init__(self, session: aiohttp.ClientSession, mesh: LocalMesh) -> None:
        self.session = session
        self.mesh = mesh
        # (wall time just before asking, node asked, its commit index) for every /ha/status read
        self.commit_samples: dict[str, list[tuple[float, int]]] = {n: [] for n in NODE_NAMES}

    async def get(self, name: str, path: str, timeout: float = 1.0) -> tuple[int, Any]:
        async with self.session.get(
            self.mesh.node(name).url + path, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            return await _answer(resp)

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
            self.mesh.node(name).url + path,
            data=json.dumps(data).encode(),
            headers=JSON_HEADERS,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp:
            return await _answer(resp)


async def _answer(resp: aiohttp.ClientResponse) -> tuple[int, Any]:
    """The status and the decoded JSON body (its first 300 characters if it is not JSON)."""
    body = await resp.read()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, body[:300].decode(errors="replace")


async def wait_until(
    what: str,
    check: Callable[[], Awaitable[str | None]],
    timeout: float,
    procs: list[Child] | None = None,
    interval: float = 0.02,
) -> float:
    """Poll `check` (None = done, else why not yet) until `timeout`; fail early if a proc died.

    Returns the seconds it took."""
    start = time.perf_counter()
    last = "not checked yet"
    while True:
        for proc in procs or []:
            if not proc.alive():
                raise exited(proc, f"while waiting for {what}")
        problem = await check()
        if problem is None:
            return time.perf_counter() - start
        last = problem
        if time.perf_counter() - start >= timeout:
            tails = "".join(f"\nlast lines of {p.log_path}:\n{p.tail()}" for p in procs or [])
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

    def __init__(self, mesh: LocalMesh, api: Api, args: argparse.Namespace) -> None:
        self.mesh = mesh
        self.api = api
        self.args = args

    def up(self) -> list[str]:
        return [node.name for node in self.mesh.nodes if node.proc.alive()]

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
            [node.proc for node in self.mesh.nodes],
            interval=0.05,
        )
        return leader[0]

    async def leader(self, ask: list[str]) -> str | None:
        for name in ask:
            status = await self.api.status(name)
            if status and status.get("leader"):
                return str(status["leader"]["name"])
        return None

    async def start(self, name: str) -> Child:
        """Start `name` again (it has exited), with the same flags and data directory."""
        node = self.mesh.node(name)
        try:
            # Popen forks: do it off the loop so a writer running alongside is not held up.
            await asyncio.to_thread(node.restart)
        except LocalMeshError as exc:
            raise BenchError(str(exc)) from None
        return node.proc

    async def wait_back(self, name: str, observer: str) -> tuple[float, float]:
        """After (re)starting `name`: seconds until /readiness is 200, then until `observer`
        sees it back, ready and caught up (each from the call)."""
        proc = self.mesh.node(name).proc
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
            [proc, self.mesh.node(observer).proc],
        )
        return ready, time.perf_counter() - begin
