"""gateway_overhead.py's load: closed-loop clients against one target, per measured window.

Each window runs `concurrency` clients for warm-up + duration and keeps only the
requests that completed inside the measured part, with CPU read at its edges; a
`Phase` adds up the windows of one (mode, target) pair over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from common import BenchError, percentile, until_sigterm
from gateway_setup import Cluster

CHAT_PATH = "/v1/chat/completions"
TARGETS = ("direct", "gateway")


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def signed_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:+.2f}"


def finite(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def request_body(model: str, max_tokens: int, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hello world"}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


HEADERS = {"Content-Type": "application/json"}


async def one_request(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool
) -> tuple[float | None, str | None]:
    """Send one request; (time of the first body byte if streaming, error kind or None)."""
    first: float | None = None
    async with session.post(url, data=body, headers=HEADERS) as resp:
        if resp.status != 200:
            await resp.read()
            return None, f"HTTP {resp.status}"
        if not stream:
            answer = await resp.read()
            return None, None if b'"choices"' in answer else "200 without choices"
        tail = b""
        async for chunk in resp.content.iter_any():
            if first is None:
                first = time.perf_counter()
            tail = (tail + chunk)[-64:]
        # The gateway ends a stream it could not finish with an `event: error`, not [DONE].
        return first, None if b"[DONE]" in tail else "stream without [DONE]"


@dataclass
class Window:
    """What one phase run measured inside its window."""

    seconds: float
    totals: list[float]  # seconds per successful request
    ttfbs: list[float]  # seconds to the first body byte (streaming only)
    errors: Counter[str]
    cpu: dict[str, float | None]  # CPU seconds used inside the window, per process group


async def run_window(
    session: aiohttp.ClientSession,
    urls: list[str],
    body: bytes,
    stream: bool,
    concurrency: int,
    warmup: float,
    duration: float,
    snapshot: Callable[[], dict[str, float | None]],
) -> Window:
    """Closed-loop load for warmup + duration; keep what completed inside the measured window."""
    targets = itertools.cycle(urls)  # several backends: spread requests evenly, like the gateway
    done: list[tuple[float, float, float]] = []  # (finished at, total, ttfb)
    failed: list[tuple[float, str]] = []
    marks: dict[str, tuple[float, dict[str, float | None]]] = {}
    begin = time.perf_counter()

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        marks[name] = (time.perf_counter(), snapshot())

    async def client() -> None:
        while "end" not in marks:
            url = next(targets)
            start = time.perf_counter()
            try:
                first, error = await one_request(session, url, body, stream)
            except Exception as exc:  # any failure is a counted error, never a crash
                first, error = None, type(exc).__name__
            now = time.perf_counter()
            if error is not None:
                failed.append((now, error))
            else:
                done.append((now, now - start, (first - start) if first is not None else math.nan))

    await asyncio.gather(
        mark("start", begin + warmup),
        mark("end", begin + warmup + duration),
        *(client() for _ in range(concurrency)),
    )
    (t0, cpu0), (t1, cpu1) = marks["start"], marks["end"]
    inside = [d for d in done if t0 <= d[0] <= t1]
    cpu: dict[str, float | None] = {}
    for key, before in cpu0.items():
        after = cpu1.get(key)
        cpu[key] = after - before if before is not None and after is not None else None
    return Window(
        seconds=t1 - t0,
        totals=[d[1] for d in inside],
        ttfbs=[d[2] for d in inside if not math.isnan(d[2])],
        errors=Counter(kind for at, kind in failed if t0 <= at <= t1),
        cpu=cpu,
    )


@dataclass
class Phase:
    """One (mode, target) pair, accumulated over rounds."""

    mode: str  # concurrent | sequential
    target: str  # direct | gateway
    concurrency: int
    seconds: float = 0.0
    totals: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float | None] = field(default_factory=dict)
    round_rps: list[float] = field(default_factory=list)

    def add(self, window: Window) -> None:
        self.seconds += window.seconds
        self.totals.extend(window.totals)
        self.ttfbs.extend(window.ttfbs)
        self.errors.update(window.errors)
        for key, value in window.cpu.items():
            known = self.cpu.get(key, 0.0)
            self.cpu[key] = None if value is None or known is None else known + value
        self.round_rps.append(len(window.totals) / window.seconds if window.seconds else 0.0)

    @property
    def requests(self) -> int:
        return len(self.totals)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def preflight(
    session: aiohttp.ClientSession, targets: dict[str, list[str]], body: bytes, stream: bool
) -> None:
    """One request to every URL of every target: fail clearly before measuring nonsense."""
    for name, urls in targets.items():
        for url in urls:
            try:
                _, error = await one_request(session, url, body, stream)
                if error is not None:  # ask again to show what the server said
                    async with session.post(url, data=body, headers=HEADERS) as resp:
                        answer = (await resp.read())[:500].decode(errors="replace")
                    error = f"{error}: {answer}"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                raise BenchError(f"preflight request to the {name} target {url} failed: {error}")


async def run_phases(args: argparse.Namespace, cluster: Cluster) -> dict[str, dict[str, Phase]]:
    """Measure every phase; a SIGTERM meanwhile cancels the run."""
    return await until_sigterm(measure(args, cluster))


async def measure(args: argparse.Namespace, cluster: Cluster) -> dict[str, dict[str, Phase]]:
    body = request_body(args.model, args.max_tokens, args.stream)
    targets = {
        "direct": [u + CHAT_PATH for u in cluster.backend_urls],
        "gateway": [cluster.gateway_url + CHAT_PATH],
    }
    modes = [
        (mode, conc, secs)
        for mode, conc, secs in (
            ("concurrent", args.concurrency, args.duration),
            ("sequential", 1, args.sequential_duration),
        )
        if secs > 0
    ]
    phases = {mode: {t: Phase(mode, t, conc) for t in TARGETS} for mode, conc, _ in modes}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await preflight(session, targets, body, args.stream)
        for rnd in range(args.rounds):
            order = TARGETS if rnd % 2 == 0 else TARGETS[::-1]
            for mode, conc, secs in modes:
                for target in order:
                    window = await run_window(
                        session,
                        targets[target],
                        body,
                        args.stream,
                        conc,
                        args.warmup,
                        secs,
                        cluster.cpu_snapshot,
                    )
                    phases[mode][target].add(window)
                    errors = sum(window.errors.values())
                    rps = len(window.totals) / window.seconds if window.seconds else 0.0
                    print(
                        f"  round {rnd + 1}/{args.rounds} {mode:<10} {target:<7} "
                        f"{rps:9.1f} req/s  p50 {ms(percentile(window.totals, 50)):>8} ms  "
                        f"errors {errors}",
                        file=sys.stderr,
                        flush=True,
                    )
    return phases
