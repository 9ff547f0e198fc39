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
import contextlib
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    CLK_TCK,
    LOG_TAIL_LINES,
    BenchError,
    Interrupted,
    Proc,
    free_port,
    interrupt,
    load_average,
    percentile,
)

CHAT_PATH = "/v1/chat/completions"
TARGETS = ("direct", "gateway")

# Loopback only: never send the benchmark's polls through an HTTP proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- processes ---------------------------------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine spent busy so far (/proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]; guest is in user.
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(
    proc: Proc | None, what: str, check: Callable[[], str | None], timeout: float
) -> None:
    """Poll `check` (None = done, else why not yet) until `timeout`; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    last = "not checked yet"
    while True:
        if proc is not None and not proc.alive():
            raise BenchError(
                f"{proc.label} exited with status {proc.popen.returncode} before {what}.\n"
                f"command: {shlex.join(proc.command)}\n"
                f"last {LOG_TAIL_LINES} lines of {proc.log_path}:\n{proc.tail()}"
            )
        try:
            problem = check()
        except (OSError, ValueError) as exc:  # not listening yet, or a half-written answer
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        last = problem
        if time.monotonic() >= deadline:
            tail = ""
            if proc is not None:
                tail = f"\nlast {LOG_TAIL_LINES} lines of {proc.log_path}:\n{proc.tail()}"
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} ({last}){tail}")
        time.sleep(0.05)


def status_is_200(url: str) -> Callable[[], str | None]:
    def check() -> str | None:
        status, body = http_get(url)
        return None if status == 200 else f"{url} answered {status}: {body[:200]!r}"

    return check


def gateway_ready(base: str, workers: int) -> Callable[[], str | None]:
    """Ready, and every worker discovered and healthy (readiness alone needs only one)."""

    def check() -> str | None:
        status, body = http_get(base + "/readiness")
        if status != 200:
            return f"/readiness answered {status}: {body[:200]!r}"
        status, body = http_get(base + "/health")
        healthy = json.loads(body).get("workers", {}).get("healthy", 0) if status == 200 else 0
        return None if healthy >= workers else f"{healthy} of {workers} workers healthy"

    return check


@dataclass
class Cluster:
    tmp: Path
    workers: list[Proc] = field(default_factory=list)
    gateway: Proc | None = None
    backend_urls: list[str] = field(default_factory=list)
    gateway_url: str = ""

    def procs(self) -> list[Proc]:
        return ([self.gateway] if self.gateway else []) + self.workers

    def cpu_snapshot(self) -> dict[str, float | None]:
        """CPU seconds so far of this process ("loadgen"), the gateway, the workers, all."""
        snap: dict[str, float | None] = {"loadgen": time.process_time()}
        snap["gateway"] = self.gateway.cpu_seconds() if self.gateway else None
        worker_cpu = [w.cpu_seconds() for w in self.workers]
        ok = bool(worker_cpu) and all(c is not None for c in worker_cpu)
        snap["workers"] = sum(c for c in worker_cpu if c is not None) if ok else None
        snap["machine"] = machine_busy_seconds()  # everything, for "rest of machine"
        return snap

    def stop(self) -> None:
        for proc in self.procs():  # the gateway first: it never sees its workers vanish
            with contextlib.suppress(Exception):
                proc.stop()


def start_cluster(args: argparse.Namespace, cluster: Cluster) -> None:
    if args.backend_url:
        cluster.backend_urls = [u.rstrip("/") for u in args.backend_url]
        for url in cluster.backend_urls:
            check = status_is_200(url + "/health")
            wait_until(None, f"backend {url}/health to answer 200", check, args.startup_timeout)
    else:
        for _ in range(args.workers):
            port = free_port()
            proc = Proc(
                f"echo worker :{port}",
                [
                    "echo-worker",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--model",
                    args.model,
                ],
                cluster.tmp / f"echo-{port}.log",
            )
            cluster.workers.append(proc)
            cluster.backend_urls.append(f"http://127.0.0.1:{port}")
        for proc, url in zip(cluster.workers, cluster.backend_urls, strict=True):
            check = status_is_200(url + "/health")
            wait_until(proc, f"{url}/health answered 200", check, args.startup_timeout)
    port = free_port()
    cluster.gateway_url = f"http://127.0.0.1:{port}"
    cluster.gateway = Proc(
        f"gateway :{port}",
        [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(cluster.tmp / "gateway-data"),
            "--node-name",
            "bench",
            "--policy",
            args.policy,
            "--worker-urls",
            *cluster.backend_urls,
            "--max-concurrent-requests",
            "1024",
            "--queue-size",
            "4096",
            "--log-level",
            "warning",
            "--shutdown-grace-secs",
            "5",
        ],
        cluster.tmp / "gateway.log",
        # Stop at once on SIGTERM instead of serving on for the drain delay (a load balancer's
        # grace time). An environment variable, because nodes without the setting ignore it.
        env={"MESHGATE_DRAIN_DELAY_SECS": "0"},
    )
    wait_until(
        cluster.gateway,
        f"{cluster.gateway_url}/readiness with all {len(cluster.backend_urls)} worker(s) healthy",
        gateway_ready(cluster.gateway_url, len(cluster.backend_urls)),
        args.startup_timeout,
    )


# -- load generation -----------------------------------------------------------------------


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
    """Measure every phase; a SIGTERM meanwhile cancels the run.

    While the loop runs it owns SIGTERM: the signal cancels this task, which closes the
    client session cleanly (raising from a plain signal handler would land inside some
    aiohttp callback and leave "exception never retrieved" noise).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await measure(args, cluster)
    except asyncio.CancelledError:
        raise Interrupted("signal") from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # resets it to SIG_DFL: put ours back
        signal.signal(signal.SIGTERM, interrupt)


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


# -- statistics and report -------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def signed_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:+.2f}"


def finite(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


QUANTILES = (50, 90, 99)


def latency_rows(
    label: str, direct: list[float], gateway: list[float]
) -> list[tuple[str, str, str, str]]:
    rows = []
    for q in QUANTILES:
        d, g = percentile(direct, q), percentile(gateway, q)
        rows.append((f"{label} p{q} (ms)", ms(d), ms(g), signed_ms(g - d)))
    return rows


def mode_table(phases: dict[str, Phase], stream: bool) -> list[tuple[str, str, str, str]]:
    d, g = phases["direct"], phases["gateway"]
    change = f"{(g.rps / d.rps - 1) * 100:+.1f}%" if d.rps else "n/a"
    rows = [
        ("requests (ok)", str(d.requests), str(g.requests), ""),
        ("requests/s", f"{d.rps:.1f}", f"{g.rps:.1f}", f"{g.rps - d.rps:+.1f} ({change})"),
    ]
    if len(d.round_rps) > 1:
        rows.append(
            (
                "requests/s per round",
                " / ".join(f"{r:.0f}" for r in d.round_rps),
                " / ".join(f"{r:.0f}" for r in g.round_rps),
                "",
            )
        )
    if stream:
        rows += latency_rows("first byte", d.ttfbs, g.ttfbs)
        rows += latency_rows("total", d.totals, g.totals)
    else:
        rows += latency_rows("latency", d.totals, g.totals)
    rows.append(("errors", str(sum(d.errors.values())), str(sum(g.errors.values())), ""))
    return rows


def render(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def per_request_us(cpu: float | None, requests: int) -> float | None:
    return cpu / requests * 1e6 if cpu is not None and requests else None


def fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def idle_gateway_rate(phases: dict[str, dict[str, Phase]]) -> float | None:
    """Gateway CPU seconds per wall second while only the direct phases ran (Raft ticks, checks)."""
    cpu = [p["direct"].cpu.get("gateway") for p in phases.values()]
    wall = sum(p["direct"].seconds for p in phases.values())
    if not wall or any(c is None for c in cpu):
        return None
    return sum(c for c in cpu if c is not None) / wall


def cpu_report(phases: dict[str, dict[str, Phase]], cores: int) -> tuple[str, dict[str, Any]]:
    idle = idle_gateway_rate(phases)
    rows: list[tuple[str, ...]] = []
    data: dict[str, Any] = {"gateway_idle_cores": None if idle is None else round(idle, 4)}
    lines = []
    worst_other = 0.0
    for mode, pair in phases.items():
        for target in TARGETS:
            phase = pair[target]
            ours = sum(phase.cpu.get(k) or 0.0 for k in ("loadgen", "gateway", "workers"))
            machine = phase.cpu.get("machine")
            busy = ours / phase.seconds if phase.seconds else math.nan
            other = (machine - ours) / phase.seconds if machine is not None else math.nan
            if phase.seconds and machine is not None:
                worst_other = max(worst_other, other)
            gw = per_request_us(phase.cpu.get("gateway"), phase.requests)
            rows.append(
                (
                    f"{mode} {target}",
                    str(phase.requests),
                    f"{phase.seconds:.1f}",
                    f"{busy:.2f} of {cores}",
                    "n/a" if math.isnan(other) else f"{max(other, 0.0):.2f}",
                    fmt_us(per_request_us(phase.cpu.get("loadgen"), phase.requests)),
                    fmt_us(gw) if target == "gateway" else "idle",
                    fmt_us(per_request_us(phase.cpu.get("workers"), phase.requests)),
                )
            )
            data[f"{mode}_{target}"] = {
                "cpu_seconds": {
                    k: None if v is None else round(v, 3) for k, v in phase.cpu.items()
                },
                "cores_busy": finite(busy, 3),
                "rest_of_machine_cores": finite(other, 3),
            }
        gw_phase = pair["gateway"]
        gross = per_request_us(gw_phase.cpu.get("gateway"), gw_phase.requests)
        net = None
        if gross is not None and idle is not None:
            net = per_request_us(
                (gw_phase.cpu.get("gateway") or 0.0) - idle * gw_phase.seconds, gw_phase.requests
            )
        data[f"{mode}_gateway"]["gateway_cpu_us_per_request"] = (
            None if gross is None else round(gross, 1)
        )
        data[f"{mode}_gateway"]["gateway_cpu_us_per_request_net_of_idle"] = (
            None if net is None else round(net, 1)
        )
        lines.append(
            f"gateway CPU per request, {mode}: {fmt_us(gross)} µs "
            f"({fmt_us(net)} µs after subtracting its idle CPU)"
        )
        gw_cpu = gw_phase.cpu.get("gateway")
        if mode == "concurrent" and gw_cpu is not None and net and gw_phase.seconds:
            lines.append(
                f"  the gateway used {gw_cpu / gw_phase.seconds:.2f} of one core in that phase; "
                f"estimated ceiling of one node (one event loop): 1 s / {net:.0f} µs "
                f"~= {1e6 / net:,.0f} req/s"
            )
    header = (
        "phase",
        "requests",
        "wall s",
        "bench cores",
        "other cores",
        "loadgen µs/req",
        "gateway µs/req",
        "workers µs/req",
    )
    idle_line = "gateway idle CPU (measured during the direct phases): " + (
        "n/a" if idle is None else f"{idle * 100:.1f}% of one core"
    )
    notes = [
        "bench cores: CPU of the load generator, gateway and workers per wall second; other "
        "cores: the rest of the machine (other processes, unattributed kernel work)."
    ]
    if worst_other > 0.15:
        notes.append(
            f"warning: other work used up to {worst_other:.2f} cores during a measured window; "
            "the machine was not quiet, so expect noise (compare the per-round rates)."
        )
    text = "\n".join([render(rows, header), *lines, idle_line, *notes])
    return text, data


def phase_json(phase: Phase) -> dict[str, Any]:
    out: dict[str, Any] = {
        "concurrency": phase.concurrency,
        "seconds": round(phase.seconds, 3),
        "requests": phase.requests,
        "requests_per_second": round(phase.rps, 2),
        "requests_per_second_by_round": [round(r, 2) for r in phase.round_rps],
        "errors": sum(phase.errors.values()),
        "error_kinds": dict(phase.errors),
        "latency_ms": {f"p{q}": finite(percentile(phase.totals, q) * 1000) for q in QUANTILES},
        "cpu_seconds": {k: None if v is None else round(v, 3) for k, v in phase.cpu.items()},
    }
    if phase.totals:
        out["latency_ms"]["mean"] = round(sum(phase.totals) / len(phase.totals) * 1000, 3)
        out["latency_ms"]["max"] = round(max(phase.totals) * 1000, 3)
    if phase.ttfbs:
        out["first_byte_ms"] = {
            f"p{q}": finite(percentile(phase.ttfbs, q) * 1000) for q in QUANTILES
        }
    return out


def added_json(pair: dict[str, Phase], stream: bool) -> dict[str, Any]:
    d, g = pair["direct"], pair["gateway"]
    added = {
        f"p{q}": finite((percentile(g.totals, q) - percentile(d.totals, q)) * 1000)
        for q in (50, 99)
    }
    out: dict[str, Any] = {"latency_ms": added}
    if stream:
        out["first_byte_ms"] = {
            f"p{q}": finite((percentile(g.ttfbs, q) - percentile(d.ttfbs, q)) * 1000)
            for q in (50, 99)
        }
    out["throughput_ratio"] = round(g.rps / d.rps, 4) if d.rps else None
    return out


def report(
    args: argparse.Namespace,
    cluster: Cluster,
    phases: dict[str, dict[str, Phase]],
    load_before: str,
    elapsed: float,
) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    kind = "streaming" if args.stream else "non-streaming"
    backend = (
        f"{len(cluster.backend_urls)} external backend(s)"
        if args.backend_url
        else f"{len(cluster.workers)} echo worker(s)"
    )
    print()
    print("meshgate gateway overhead benchmark")
    print(f"command:   {shlex.join(sys.orig_argv)}")
    print(
        f"machine:   {cores} CPU cores ({platform.machine()}, {platform.system()} "
        f"{platform.release()}), Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
    )
    print(f"load avg:  {load_before} before, {load_average()} after (1/5/15 min)")
    print(
        f"setup:     {backend}, gateway policy {args.policy}, {kind} chat completions "
        f"(max_tokens {args.max_tokens}), {args.rounds} round(s) alternating the target order, "
        f"{args.warmup:g} s warm-up per phase; ran {elapsed:.0f} s"
    )
    print(
        f"note:      the load generator runs on the same {cores} cores as the gateway and the "
        "worker(s), so absolute numbers are pessimistic; compare direct vs gateway, and use "
        "gateway CPU per request to size real deployments."
    )
    result: dict[str, Any] = {
        "command": sys.orig_argv,
        "machine": {
            "cpu_count": cores,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "config": {
            "stream": args.stream,
            "workers": len(cluster.backend_urls),
            "backend_urls": args.backend_url or [],
            "policy": args.policy,
            "concurrency": args.concurrency,
            "duration": args.duration,
            "sequential_duration": args.sequential_duration,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "model": args.model,
            "max_tokens": args.max_tokens,
        },
        "elapsed_seconds": round(elapsed, 1),
        "phases": {},
    }
    titles = {
        "concurrent": f"Concurrent: {args.concurrency} requests in flight, "
        f"{args.rounds} x {args.duration:g} s per target",
        "sequential": f"Sequential: 1 request at a time, "
        f"{args.rounds} x {args.sequential_duration:g} s per target",
    }
    header = ("", "direct", "gateway", "gateway - direct")
    for mode, pair in phases.items():
        print()
        print(f"== {titles[mode]} ({kind}) ==")
        print(render(mode_table(pair, args.stream), header))
        d, g = pair["direct"], pair["gateway"]
        which = "total " if args.stream else ""
        print(
            f"added {which}latency: "
            f"p50 {signed_ms(percentile(g.totals, 50) - percentile(d.totals, 50))} ms, "
            f"p99 {signed_ms(percentile(g.totals, 99) - percentile(d.totals, 99))} ms"
        )
        if args.stream:
            print(
                "added first-byte latency: "
                f"p50 {signed_ms(percentile(g.ttfbs, 50) - percentile(d.ttfbs, 50))} ms, "
                f"p99 {signed_ms(percentile(g.ttfbs, 99) - percentile(d.ttfbs, 99))} ms"
            )
        for phase in (d, g):
            if phase.errors:
                kinds = ", ".join(f"{k} x{n}" for k, n in phase.errors.most_common(5))
                print(f"errors ({phase.target}): {kinds}")
        result["phases"][mode] = {
            "direct": phase_json(d),
            "gateway": phase_json(g),
            "added": added_json(pair, args.stream),
        }
    cpu_text, cpu_data = cpu_report(phases, cores)
    print()
    tick_ms = 1000 // CLK_TCK
    print(f"== CPU inside the measured windows (/proc/<pid>/stat, {tick_ms} ms ticks) ==")
    print(cpu_text)
    if args.backend_url:
        print(
            "(workers: external backends; their CPU is not measured, and cores busy leaves it out)"
        )
    result["cpu"] = cpu_data
    return result


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
    if args.workers is None:
        args.workers = 1
    if args.duration <= 0 and args.sequential_duration <= 0:
        parser.error("--duration and --sequential-duration are both 0: nothing to measure")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="meshgate-bench-"))
    cluster = Cluster(tmp)
    keep = args.keep_tmp
    load_before = load_average()
    started = time.monotonic()
    try:
        print(f"starting processes (logs in {tmp})", file=sys.stderr, flush=True)
        start_cluster(args, cluster)
        print(
            f"gateway {cluster.gateway_url} ready after {time.monotonic() - started:.1f} s; "
            f"backends {' '.join(cluster.backend_urls)}",
            file=sys.stderr,
            flush=True,
        )
        for proc in cluster.procs():
            print(f"  {proc.label}: {shlex.join(proc.command)}", file=sys.stderr)
        phases = asyncio.run(run_phases(args, cluster))
        for proc in cluster.procs():
            if not proc.alive():
                raise BenchError(
                    f"{proc.label} died during the run (status {proc.popen.returncode}); "
                    f"last lines of {proc.log_path}:\n{proc.tail()}"
                )
        result = report(args, cluster, phases, load_before, time.monotonic() - started)
        for proc in cluster.procs():
            trouble = proc.problems()
            if trouble:
                keep = True
                print(f"{proc.label} logged {len(trouble)} warning/error line(s), first ones:")
                print("\n".join("  " + line[:300] for line in trouble[:5]))
        if args.json:
            print(json.dumps(result, sort_keys=True))
        empty = [
            f"{p.mode} {p.target}"
            for pair in phases.values()
            for p in pair.values()
            if p.requests == 0
        ]
        if empty:
            print(f"error: no successful request in: {', '.join(empty)}", file=sys.stderr)
            keep = True
            return 1
        return 0
    except BenchError as exc:
        keep = True
        print(f"gateway_overhead: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("gateway_overhead: interrupted; stopping the processes", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
        if keep and any(tmp.iterdir()):
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
