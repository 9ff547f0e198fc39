"""raft_bench.py's report: the tables, the targets with PASS/MISS, the nodes' log trouble."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
from collections import Counter
from typing import Any

import partition_phase
from common import load_average
from raft_phases import fmt_errors

from node.localmesh import LocalMesh

TARGET_FOLLOWER_P50_MS = 3.0
TARGET_FAILOVER_MEDIAN_S = 1.0
TARGET_STALL_MS = 100.0


_LOG_MARKS = (" CRITICAL ", " ERROR ", " WARNING ", "Traceback")


def log_problems(mesh: LocalMesh) -> dict[str, dict[str, int]]:
    """Per node: warning-or-worse log lines, grouped by message with the numbers blanked."""
    found: dict[str, dict[str, int]] = {}
    for node in mesh.nodes:
        name = node.name
        try:
            text = node.log_path.read_text(errors="replace")
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


def report(args: argparse.Namespace, mesh: LocalMesh, results: dict[str, Any]) -> dict[str, Any]:
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
        runs = rr.get("runs") or []
        if len(runs) > 1:
            add(f"{len(runs)} runs; each run's longest write stall, and the leader's hand-over's:")
            add(f"{'run':<5}{'longest ms':>11}{'hand-over ms':>14}{'new terms':>11}{'failed':>8}")
            for i, r in enumerate(runs, 1):
                add(
                    f"{i:<5}{ms(r['longest_stall_ms'], 1):>11}{r['hand_over_stall_ms']:>14.1f}"
                    f"{r['new_terms']:>11}{r['failed_attempts']:>8}"
                )
            add(f"the worst run ({rr['worst_run']}) in full:")
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
        if len(runs) > 1:
            hand_over = max(r["hand_over_stall_ms"] for r in runs)
            targets.append(
                (
                    f"leader hand-over stall, worst of {len(runs)}",
                    f"<= {TARGET_STALL_MS:g} ms",
                    f"{hand_over:.1f} ms",
                    hand_over <= TARGET_STALL_MS,
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
