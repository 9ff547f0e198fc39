"""gateway_overhead.py's report: the tables, the CPU account, and the JSON result."""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
from typing import Any

import aiohttp
from common import CLK_TCK, load_average, percentile
from gateway_load import TARGETS, Phase, finite, ms, signed_ms
from gateway_setup import Cluster

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
