"""The node's scrape-time gauges: readings of live state, never stored copies.

One reader per part, each given that part alone, so a process built from a
subset of the parts (a data plane without Raft) registers the readers it has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mesh.raft import MeshRaft
from node.ha.peers import PeerPoller
from node.limits.admission import Admission
from node.limits.ratelimit import RateLimiter
from node.workers.breaker import STATE_NUMBER
from node.workers.pool import WorkerPool

Gauge = tuple[str, str, dict[str, str], float]


def worker_gauges(pool: WorkerPool) -> Iterator[Gauge]:
    for worker in pool.all():
        labels = {"worker": worker.id, "url": worker.url}
        healthy = float(worker.healthy and worker.status == "ready")
        yield "meshgate_worker_healthy", "1 if this node sees the worker healthy", labels, healthy
        yield "meshgate_worker_in_flight", "Requests in flight to the worker", labels, worker.load
        yield (
            "meshgate_circuit_breaker_state",
            "Circuit state: 0 closed, 1 half-open, 2 open",
            labels,
            STATE_NUMBER[worker.breaker.state],
        )


def admission_gauges(admission: Admission) -> Iterator[Gauge]:
    yield "meshgate_admission_in_flight", "Requests holding a slot", {}, admission.in_flight
    yield "meshgate_admission_queue_depth", "Requests waiting for a slot", {}, admission.queued
    for reason, count in admission.rejected.items():
        yield "meshgate_admission_rejected", "Requests refused (429)", {"reason": reason}, count


def raft_gauges(raft: MeshRaft, snapshot: Path) -> Iterator[Gauge]:
    """Raft's counters; `snapshot` is the file whose mtime says when one was last written."""
    status = raft.status()
    yield "meshgate_raft_applied_index", "Last log index applied here", {}, status.applied_index
    yield "meshgate_raft_commit_index", "Commit index known here", {}, status.commit_index
    yield "meshgate_raft_term", "Current Raft term", {}, status.term
    yield "meshgate_raft_is_leader", "1 on the leader", {}, float(status.is_leader)
    yield (
        "meshgate_raft_has_quorum",
        "1 while a majority is reachable",
        {},
        float(status.has_quorum),
    )
    yield "meshgate_raft_log_entries", "Entries in the Raft log", {}, status.log_len
    yield (
        "meshgate_raft_unappliable_entries",
        "Committed entries that could not be applied (recorded as failed)",
        {},
        status.unappliable_entries,
    )
    yield (
        "meshgate_raft_refused_connections",
        "Frames and connections the Raft port refused",
        {},
        status.refused_connections,
    )
    yield (
        "meshgate_raft_stale",
        "1 while cut off from the leader (a leader: from a majority) for longer than the bound",
        {},
        float(status.stale),
    )
    yield (
        "meshgate_raft_behind_by",
        "Committed entries not yet applied here (the leader's commit index minus ours)",
        {},
        float(status.behind_by or 0),
    )
    yield "meshgate_raft_dead_links", "Raft links closed as dead", {}, status.dead_links
    yield "meshgate_raft_snapshots_sent", "Snapshots sent to followers", {}, status.snapshots_sent
    yield (
        "meshgate_raft_tick_alive",
        "1 while the Raft thread runs",
        {},
        float(raft.tick_alive()),
    )
    if snapshot.exists():
        yield (
            "meshgate_raft_snapshot_mtime_seconds",
            "When the last snapshot was written",
            {},
            (snapshot.stat().st_mtime),
        )


def mesh_gauges(draining: bool, serving_nodes: int, peers: PeerPoller) -> Iterator[Gauge]:
    yield "meshgate_node_draining", "1 while this node drains", {}, float(draining)
    yield (
        "meshgate_mesh_serving_nodes",
        "Nodes serving, as this node sees it",
        {},
        serving_nodes,
    )
    for name, view in peers.views.items():
        yield (
            "meshgate_mesh_peer_reachable",
            "1 if the peer answered lately",
            {"peer": name},
            float(view.reachable),
        )


def rate_limit_gauges(limiter: RateLimiter) -> Iterator[Gauge]:
    if limiter.redis_healthy is not None:
        yield (
            "meshgate_rate_limit_redis_up",
            "1 while Redis counters are used",
            {},
            float(limiter.redis_healthy),
        )
    for scope, stats in limiter.stats()["scopes"].items():
        labels = {"scope": scope}
        yield (
            "meshgate_rate_limit_admitted",
            "Requests admitted by a rate limit",
            labels,
            stats["admitted"],
        )
        yield (
            "meshgate_rate_limit_rejected",
            "Requests refused by a rate limit",
            labels,
            stats["rejected"],
        )
