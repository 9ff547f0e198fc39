"""Phase 5 of raft_bench.py: real network partitions, with writers on every node.

The mesh for this phase runs in Linux network namespaces (the test harness,
tests/netns.py: one namespace per node on a private bridge; a cut sets a
node's bridge port down, so packets are dropped without a reset, as when a
cable is pulled). Writers send config writes to all three nodes throughout
(tests/writers.py). Each round cuts one node, the leader or a follower in
turn, for `--partition-seconds`, then heals it, and measures:

- **cut -> majority acknowledges**: from the cut to the first acknowledgement,
  by a node of the majority, of a write sent after the cut (a cut leader
  means an election first);
- **heal -> caught up**: from the heal until the healed node has applied every
  entry the majority had committed at the heal;
- **heal -> equal replicas**: the writers stop at the caught-up point; from the
  heal until all three nodes hold the same applied index and config;
- **bytes to the healed node**: what the bridge delivered to it from the heal
  until it caught up (its veth port's counters: Raft, HTTP polls, all of it);
- **elections after the heal**: new Raft terms first seen after it (0 is the
  aim: a rejoining node must not depose a healthy leader).

It needs root and `ip` (iproute2); elsewhere it reports why it was skipped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, progress

sys.path.insert(0, str(ROOT))  # the harness lives with the tests

from tests import netns
from tests.netns import ADMIN, NetnsMesh, NsNode
from tests.writers import Writers

POLL = 0.02


def _local(node: NsNode) -> dict[str, Any] | None:
    try:
        return node.local(timeout=1)
    except Exception:
        return None


def _status(node: NsNode) -> dict[str, Any] | None:
    try:
        return node.status(timeout=2)
    except Exception:
        return None


def _max_term(nodes: list[NsNode]) -> int:
    return max((s or {}).get("term") or 0 for s in map(_local, nodes))


def _until(check: Any, timeout: float) -> float | None:
    """Seconds until `check()` is truthy, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(POLL)
    return None


def _equal(mesh: NetnsMesh) -> bool:
    try:
        views = [n.config() for n in mesh.nodes]
    except Exception:
        return False
    return all(v == views[0] for v in views[1:])


def one_round(mesh: NetnsMesh, number: int, args: argparse.Namespace) -> dict[str, Any]:
    leader = mesh.leader()
    followers = [n for n in mesh.nodes if n is not leader]
    victim = leader if number % 2 == 0 else followers[number // 2 % 2]
    majority = [n for n in mesh.nodes if n is not victim]
    names = {n.name for n in majority}
    with Writers(mesh.nodes, ADMIN, prefix=f"bench/partition/{number}") as writers:
        time.sleep(1.0)
        committed_at_cut = int((_local(leader) or {}).get("commit_index") or 0)
        mesh.cut(victim)
        cut_at = time.monotonic()  # once the port is down

        def majority_acked() -> bool:
            return any(
                w.acknowledged and w.node in names and w.sent >= cut_at for w in writers.snapshot()
            )

        first_ack = _until(majority_acked, args.partition_seconds)
        time.sleep(max(0.0, cut_at + args.partition_seconds - time.monotonic()))
        new_leader = mesh.leader(among=majority)
        at_heal = _local(new_leader) or {}
        committed = int(at_heal.get("commit_index") or 0)
        terms_at_heal = _max_term(majority)
        _, sent_before = mesh.lab.port_bytes(victim.index)
        healed_at = time.monotonic()
        mesh.heal(victim)

        def applied_all() -> bool:
            local = _local(victim)
            return bool(local) and int(local["applied_index"]) >= committed  # type: ignore[index]

        caught_up = _until(applied_all, args.partition_heal_timeout)
        _, sent_after = mesh.lab.port_bytes(victim.index)
        flag = _until(lambda: (_local(victim) or {}).get("caught_up"), 5.0)
    equal = _until(lambda: _equal(mesh), args.partition_heal_timeout)
    equal_s = None if equal is None else time.monotonic() - healed_at
    config, _ = mesh.nodes[0].config()
    return {
        "cut": victim.name,
        "was": "leader" if victim is leader else "follower",
        "new_leader": new_leader.name,
        "cut_to_majority_ack_s": first_ack,
        "heal_to_caught_up_s": caught_up,
        "caught_up_flag_after_s": flag,
        "heal_to_equal_s": equal_s,
        "bytes_to_healed_node": sent_after - sent_before,
        "entries_committed_during_cut": committed - committed_at_cut,
        "elections_after_heal": _max_term(mesh.nodes) - terms_at_heal,
        "writes_acknowledged": len(writers.acknowledged()),
        "snapshots_sent": (_status(new_leader) or {}).get("snapshots_sent"),
        "acknowledged_writes_lost": len(writers.lost(config)),
    }


def log_lines(tmp: Path, marks: tuple[str, ...]) -> dict[str, int]:
    found = {}
    for log in sorted(tmp.glob("n*.log")):
        text = log.read_text(errors="replace")
        found[log.stem] = sum(1 for line in text.splitlines() if any(m in line for m in marks))
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    problem = netns.unavailable()
    if problem:
        progress(f"phase 5: skipped ({problem})")
        return {"skipped": problem}
    tmp = Path(tempfile.mkdtemp(prefix="meshgate-raft-bench-netns-"))
    progress(f"phase 5: a mesh in network namespaces (logs in {tmp})")
    extra = ()
    if args.partition_snapshot_gap:
        extra = ("--mesh-log-compaction-entries", str(args.partition_snapshot_gap))
    mesh = NetnsMesh(tmp, extra=extra)
    rounds = []
    try:
        mesh.wait_ready()
        for number in range(args.partition_rounds):
            result = one_round(mesh, number, args)
            rounds.append(result)
            progress(
                f"phase 5: round {number + 1}/{args.partition_rounds}: cut {result['was']} "
                f"{result['cut']} for {args.partition_seconds:g} s; majority acked after "
                f"{_s(result['cut_to_majority_ack_s'])}; caught up "
                f"{_s(result['heal_to_caught_up_s'])} after the heal "
                f"({result['bytes_to_healed_node'] / 1e6:.2f} MB), replicas equal after "
                f"{_s(result['heal_to_equal_s'])}"
            )
    finally:
        mesh.stop()
    result = {
        "rounds": rounds,
        "seconds_cut": args.partition_seconds,
        "snapshot_gap": args.partition_snapshot_gap,
        "critical_lines": log_lines(tmp, (" CRITICAL ",)),
        "truncating_lines": log_lines(tmp, ("truncating already-applied",)),
    }
    if args.keep_tmp:
        progress(f"phase 5: logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def report(result: dict[str, Any], add: Any) -> None:
    add("")
    if "skipped" in result:
        add(f"== 5. Partitions: skipped ({result['skipped']}) ==")
        return
    gap = result["snapshot_gap"]
    add(
        f"== 5. Partitions: one node cut off for {result['seconds_cut']:g} s (bridge port down), "
        "writers on all three nodes"
        + (f", snapshots past {gap} entries behind" if gap else "")
        + " =="
    )
    add(
        f"{'round':<6}{'cut':<14}{'maj. ack s':>11}{'caught up s':>12}{'equal s':>9}"
        f"{'MB to it':>10}{'entries':>9}{'elections':>10}{'lost':>6}"
    )
    for i, r in enumerate(result["rounds"], 1):
        add(
            f"{i:<6}{r['was'] + ' ' + r['cut']:<14}{_f(r['cut_to_majority_ack_s']):>11}"
            f"{_f(r['heal_to_caught_up_s']):>12}{_f(r['heal_to_equal_s']):>9}"
            f"{r['bytes_to_healed_node'] / 1e6:>10.2f}{r['entries_committed_during_cut']:>9}"
            f"{r['elections_after_heal']:>10}{r['acknowledged_writes_lost']:>6}"
        )
    add(
        "maj. ack: cut -> first acknowledgement by the majority of a write sent after the cut; "
        "caught up: heal -> the healed node applied all the majority had committed at the heal; "
        "equal: heal -> same applied index and config on all three (writers stopped at the "
        "catch-up); MB to it: bytes its bridge port delivered from the heal to the catch-up; "
        "entries: committed by the majority during the cut; elections: new terms after the heal"
    )
    crit = sum(result["critical_lines"].values())
    trunc = sum(result["truncating_lines"].values())
    add(f"node logs: {crit} CRITICAL line(s), {trunc} 'truncating already-applied' line(s)")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
