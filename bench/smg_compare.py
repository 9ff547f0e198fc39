"""meshgate against SMG (the Rust gateway, `pip install smg`) on the same machine, the same
static backend and the same load generator, in one run.

Targets: the nginx backend directly (the baseline), one meshgate node and one SMG
router, both proxying to that backend with round_robin; with --baseline-src or
--baseline-flags also a meshgate node run from another checkout or with other flags
(before/after a change, `--event-loop asyncio`). Each round
measures every target, in an order that rotates from round to round: `wrk` with
--connections connections for --duration seconds, then one connection for
--sequential-duration seconds, after --warmup seconds of discarded load. The CPU
of each gateway's process group is read from /proc around every window.

Run from the repository root: `.venv/bin/python bench/smg_compare.py`. Needs nginx
and wrk (`apt-get install -y nginx wrk`); SMG is installed into --smg-venv with pip
the first time (skipped, with the reason, if that fails).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import BenchError, BenchRun, load_average, progress
from gateway_overhead import positive_int, seconds
from smg_procs import (
    group_cpu_seconds,
    meshgate_node,
    smg_binary,
    start_nginx,
    start_smg,
    wait_meshgate,
)
from wrk_load import WrkResult, run_wrk, write_script

from node.localmesh import Child, LocalMesh, free_ports, stop_all

BACKEND = "backend"


@dataclass
class Target:
    name: str
    url: str
    pgid: int | None  # None: the backend, whose CPU is not the question
    windows: dict[int, list[tuple[WrkResult, float]]] = field(default_factory=dict)

    def measure(self, script: Path, connections: int, secs: float) -> WrkResult:
        before = group_cpu_seconds(self.pgid) if self.pgid else 0.0
        result = run_wrk(script, self.url, connections, secs)
        cpu = group_cpu_seconds(self.pgid) - before if self.pgid else 0.0
        self.windows.setdefault(connections, []).append((result, cpu))
        return result

    def summary(self, connections: int) -> dict[str, float | int | list[float] | None]:
        got = self.windows.get(connections, [])
        requests = sum(r.requests for r, _ in got)
        wall = sum(r.seconds for r, _ in got)
        cpu = sum(c for _, c in got)
        return {
            "requests": requests,
            "errors": sum(r.errors for r, _ in got),
            "rate": requests / wall if wall else 0.0,
            "rate_per_round": [round(r.rate) for r, _ in got],
            # Percentiles of windows cannot be merged: the median over the rounds.
            "p50_ms": statistics.median(r.p50_ms for r, _ in got) if got else None,
            "p99_ms": statistics.median(r.p99_ms for r, _ in got) if got else None,
            "cpu_us_per_request": cpu / requests * 1e6 if requests and self.pgid else None,
            "cores": cpu / wall if wall and self.pgid else None,
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="smg_compare.py",
        description="meshgate against SMG in front of one static nginx backend, driven by wrk.",
    )
    parser.add_argument("--connections", type=positive_int, default=32, metavar="N")
    parser.add_argument("--duration", type=seconds, default=10.0, metavar="SECS")
    parser.add_argument("--sequential-duration", type=seconds, default=5.0, metavar="SECS")
    parser.add_argument("--warmup", type=seconds, default=2.0, metavar="SECS")
    parser.add_argument("--rounds", type=positive_int, default=2, metavar="N")
    parser.add_argument(
        "--smg-venv",
        type=Path,
        default=Path("/tmp/meshgate-bench-smg"),
        help="virtualenv holding SMG, created with `pip install smg` if missing (%(default)s)",
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        metavar="N",
        help="data-plane processes of the meshgate node (`serve --processes`; %(default)s)",
    )
    parser.add_argument("--no-smg", action="store_true", help="measure meshgate only")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        metavar="DIR",
        help="also run a meshgate node from this checkout (e.g. `git archive main node mesh`)",
    )
    parser.add_argument(
        "--baseline-flags",
        default="",
        metavar="FLAGS",
        help="also run a meshgate node with these extra `serve` flags (from --baseline-src, "
        "else this checkout), e.g. '--event-loop asyncio'",
    )
    parser.add_argument("--startup-timeout", type=seconds, default=60.0, metavar="SECS")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = BenchRun("smg_compare", args.keep_tmp)
    procs: list[Child] = []
    meshes: list[LocalMesh] = []

    def stop() -> None:
        for mesh in meshes:
            mesh.stop()
        stop_all(procs)

    return bench(lambda: measure(args, bench.tmp, procs, meshes), stop)


def start_targets(
    args: argparse.Namespace, tmp: Path, procs: list[Child], meshes: list[LocalMesh]
) -> list[Target]:
    backend_port, smg_port, smg_metrics = free_ports(3)
    procs.append(start_nginx(tmp, backend_port))
    backend = f"http://127.0.0.1:{backend_port}"
    targets = [Target(BACKEND, backend, None)]
    own = ["--processes", str(args.processes)]
    builds: list[tuple[str, Path | None, list[str]]] = [("meshgate", None, own)]
    if args.baseline_src or args.baseline_flags:
        src = args.baseline_src.resolve() if args.baseline_src else None
        # The same --processes as the measured node (a later one in --baseline-flags wins).
        builds.append(("meshgate-baseline", src, [*own, *shlex.split(args.baseline_flags)]))
    for name, src, flags in builds:
        mesh = meshgate_node(tmp, name, backend, src, flags)
        meshes.append(mesh)
        wait_meshgate(mesh, args.startup_timeout)
        targets.append(Target(name, mesh.urls[0], mesh.nodes[0].proc.pid))
    smg = None if args.no_smg else smg_binary(args.smg_venv)
    if smg is not None:
        proc = start_smg(smg, tmp, smg_port, smg_metrics, backend)
        procs.append(proc)
        targets.append(Target("smg", f"http://127.0.0.1:{smg_port}", proc.pid))
    return targets


def measure(
    args: argparse.Namespace, tmp: Path, procs: list[Child], meshes: list[LocalMesh]
) -> int:
    load_before = load_average()
    started = time.monotonic()
    targets = start_targets(args, tmp, procs, meshes)
    script = write_script(tmp)
    for round_no in range(args.rounds):
        shift = round_no % len(targets)
        for target in targets[shift:] + targets[:shift]:  # a different order every round
            progress(f"round {round_no + 1}: {target.name}")
            if args.warmup:
                run_wrk(script, target.url, args.connections, args.warmup)
            if args.duration:
                target.measure(script, args.connections, args.duration)
            if args.sequential_duration:
                target.measure(script, 1, args.sequential_duration)
    result = report(args, targets, load_before, time.monotonic() - started)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    failed = [t.name for t in targets for got in t.windows.values() for r, _ in got if r.errors]
    if failed:
        print(f"error: failed requests through {', '.join(sorted(set(failed)))}", file=sys.stderr)
        return 1
    return 0


def _fmt(value: float | int | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def report(
    args: argparse.Namespace, targets: list[Target], load_before: str, wall: float
) -> dict[str, object]:
    print("\nmeshgate against SMG: same nginx backend, same wrk, same machine")
    print(f"command:   {' '.join(sys.argv)}")
    print(
        f"machine:   {os.cpu_count()} CPU cores; load avg {load_before} before, "
        f"{load_average()} after (1/5/15 min); ran {wall:.0f} s"
    )
    print(f"rounds:    {args.rounds}, the target order rotating; {args.warmup:g} s warm-up each")
    result: dict[str, object] = {"load_before": load_before, "load_after": load_average()}
    modes = [(args.connections, args.duration), (1, args.sequential_duration)]
    for connections, secs in modes:
        if not secs:
            continue
        rows = {t.name: t.summary(connections) for t in targets}
        result[f"c{connections}"] = rows
        print(f"\n== {connections} connection(s), {args.rounds} x {secs:g} s per target ==")
        print(
            f"{'target':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'errors':>8}"
            f"{'CPU µs/req':>12}{'cores':>7}  req/s per round"
        )
        for name, row in rows.items():
            added = _added(rows, name) if name != BACKEND else None
            per_round = " / ".join(str(x) for x in row["rate_per_round"])  # type: ignore[union-attr]
            print(
                f"{name:<18}{row['rate']:>9.0f}{_fmt(row['p50_ms'], '.2f'):>9}"
                f"{_fmt(row['p99_ms'], '.2f'):>9}{_fmt(added, '+.3f'):>11}{row['errors']:>8}"
                f"{_fmt(row['cpu_us_per_request'], '.0f'):>12}{_fmt(row['cores'], '.2f'):>7}"
                f"  {per_round}"
            )
    _ratios(args, result)
    return result


def _figure(rows: object, target: str, key: str) -> float | None:
    row = rows.get(target) if isinstance(rows, dict) else None
    value = row.get(key) if isinstance(row, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _added(rows: object, target: str) -> float | None:
    """p50 latency over the backend's (at one connection: what the hop adds)."""
    gateway, base = _figure(rows, target, "p50_ms"), _figure(rows, BACKEND, "p50_ms")
    return gateway - base if gateway is not None and base is not None else None


def _ratios(args: argparse.Namespace, result: dict[str, object]) -> None:
    """meshgate / SMG for the figures the targets name."""
    c, one = result.get(f"c{args.connections}"), result.get("c1")
    if _figure(c, "smg", "rate") is None:
        print("\nno SMG figures: no ratios")
        return
    ratios = {
        f"requests/s at {args.connections} connections": "rate",
        f"p50 latency at {args.connections} connections": "p50_ms",
        f"p99 latency at {args.connections} connections": "p99_ms",
        f"CPU per request at {args.connections} connections": "cpu_us_per_request",
    }
    print("\nmeshgate / SMG (requests/s: higher is better; the rest: lower is better)")
    shown: dict[str, str] = {}
    for label, key in ratios.items():
        shown[label] = _ratio(_figure(c, "meshgate", key), _figure(c, "smg", key))
    mg_added, smg_added = _added(one, "meshgate"), _added(one, "smg")
    shown["added p50 latency at 1 connection"] = _ratio(mg_added, smg_added)
    for label, ratio in shown.items():
        print(f"  {label}: {ratio}")
    print(
        f"  (added at 1 connection: meshgate {_fmt(mg_added, '+.3f')} ms, "
        f"SMG {_fmt(smg_added, '+.3f')} ms)"
    )
    result["ratios"] = shown


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"smg_compare.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
