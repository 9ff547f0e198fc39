"""What a node says about itself (`/ha/local`) and about the mesh (`/ha/status`).

Every value is read from live state: Raft's own status, the replicated
membership, this node's health checks and counters, and the last answer of
each peer. Nothing is a placeholder: a peer that does not answer is reported
`unreachable` with the time it last did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from mesh.raft import MeshRaft, RaftStatus
from node import __version__
from node.control_loop import ControlLoop
from node.ha.peers import PeerPoller
from node.ha.rotation import MeshKeys
from node.ha.shutdown import Stopper
from node.limits.admission import Admission
from node.limits.quotas import QuotaEngine
from node.limits.ratelimit import RateLimiter
from node.plane.node_limits import ProcessLimits
from node.readiness import Readiness
from node.tokenizers.registry import TokenizerRegistry
from node.wasm_required import off_report
from node.workers.credentials import CredentialBox
from node.workers.pool import WorkerPool

if TYPE_CHECKING:
    from node.wasm.registry import WasmRegistry


class Reporting(Protocol):
    """Exactly what the reports read: this run's identity and the parts they describe."""

    name: str
    boot_id: str
    started_at: float
    raft: MeshRaft
    pool: WorkerPool
    admission: Admission
    stopper: Stopper
    peers: PeerPoller
    ratelimiter: RateLimiter
    quotas: QuotaEngine
    control: ControlLoop | None
    readiness: Readiness
    mesh_keys: MeshKeys
    credentials: CredentialBox
    tokenizer_registry: TokenizerRegistry
    wasm: WasmRegistry | None
    processes: Callable[[], list[dict[str, Any]]] | None
    process_limits: ProcessLimits | None

    def is_draining(self) -> bool: ...
    def serving_nodes(self) -> int: ...
    def leader_name(self) -> str | None: ...


def local_report(node: Reporting) -> dict[str, Any]:
    status = node.raft.status()
    commit_index, applied_index = node.raft.indexes()
    draining = node.is_draining()
    problems = node.readiness.problems()  # the data plane; health_problems: the control plane
    return {
        "name": node.name,
        "boot_id": node.boot_id,
        "version": __version__,
        "started_at": node.started_at,
        "role": status.role,
        "leader": status.leader,
        "term": status.term,
        "commit_index": commit_index,
        "applied_index": applied_index,
        "has_quorum": status.has_quorum,
        "caught_up": status.caught_up,
        "behind_by": status.behind_by,
        "stale": status.stale,
        "last_leader_contact": status.last_leader_contact_wall,
        "leader_contact_age_secs": contact_age(status),
        "unappliable_entries": status.unappliable_entries,
        "ready": not problems,
        "not_ready_reasons": problems,
        # Ready without one (static stability), but it answers inference with 503.
        "has_healthy_worker": any(w.routable for w in node.pool.all()),
        "draining": draining,
        "stopping": node.stopper.step if node.stopper.requested else None,
        # What the node's control loop did last (node/control_loop.py), and since when.
        "control_loop": node.control.last.report() if node.control else None,
        "in_flight": node.admission.in_flight,
        "quota_shares": node.quotas.share_report(),
        "queued": node.admission.queued,
        "workers": {
            w.id: {
                "healthy": w.healthy,
                "status": w.status,
                "load": w.load,
                "circuit_breaker": w.breaker.state,
                "last_error": w.last_error,
            }
            for w in node.pool.all()
        },
        "rate_limits": rate_limit_counts(node),
        "mesh_secret": secret_report(node),
        "tokenizers": node.tokenizer_registry.report(),  # this node's view of each (GET .../status)
        # Each WASM module on this node: pending/ready/failed, and its circuit breaker.
        "wasm": node.wasm.report() if node.wasm is not None else off_report(node.raft.state),
        # With --processes N: each data-plane process (name, pid, ready, starts).
        "processes": node.processes() if node.processes is not None else None,
    }


def rate_limit_counts(node: Reporting) -> dict[str, Any]:
    """The node's rate-limit counters: with several processes, all of theirs added up."""
    if node.process_limits is not None:
        return node.process_limits.rate_stats()
    return node.ratelimiter.stats()


def secret_report(node: Reporting) -> dict[str, Any]:
    """Which mesh secret this node sends with and which it accepts (fingerprints only), and
    how many worker credentials only the previous one opens: the secret may be dropped
    once this is 0 on every node (docs/raft-transport.md, "Rotating the mesh secret")."""
    under_previous = node.credentials.under_previous
    workers = node.raft.state.workers.values()
    pending = sum(1 for record in workers if under_previous(record.get("api_key")))
    return {**node.mesh_keys.report(), "credentials_under_previous": pending}


def contact_age(status: RaftStatus) -> float | None:
    """Seconds since this node last heard from a leader (a leader: from a majority)."""
    if status.last_leader_contact is None:
        return None
    return round(time.monotonic() - status.last_leader_contact, 3)


def _status_word(
    reachable: bool, report: dict[str, Any], member: dict[str, Any], polled: bool = True
) -> str:
    if not polled:
        return "unknown"  # this node has not asked it yet (it just started)
    if not reachable:
        return "unreachable"
    if report.get("stopping"):
        return "stopping"
    if report.get("draining") or member.get("draining"):
        return "draining"
    return "alive"


def mesh_status(node: Reporting) -> dict[str, Any]:
    raft = node.raft.status()
    state = node.raft.state
    me = local_report(node)
    match = {p.address: p for p in raft.peers}
    nodes = []
    known_addresses = set()
    for name, member in sorted(state.members.items()):
        address = member.get("raft_address")
        known_addresses.add(address)
        polled = True
        if name == node.name:
            report, reachable, last_contact, error = me, True, None, None
        else:
            view = node.peers.views.get(name)
            polled = view is not None and view.polled
            report = view.report if view else {}
            reachable = bool(view and view.reachable)
            last_contact = view.last_contact if view else None
            error = view.error if view else "not polled yet"
        peer = match.get(address)
        nodes.append(
            {
                "name": name,
                "raft_address": address,
                "http_url": member.get("http_url"),
                "voter": member.get("voter", address is not None),
                "role": report.get("role", "unknown") if reachable else "unknown",
                "status": _status_word(reachable, report, member, polled),
                "ready": report.get("ready") if reachable else False,
                "caught_up": report.get("caught_up") if reachable else False,
                "behind_by": report.get("behind_by") if reachable else None,
                "stale": report.get("stale") if reachable else None,
                "applied_index": report.get("applied_index") if reachable else None,
                "unappliable_entries": report.get("unappliable_entries") if reachable else None,
                "mesh_secret": report.get("mesh_secret") if reachable else None,
                "wasm_breakers_open": open_breakers(report) if reachable else None,
                "match_index": peer.match_index if peer and raft.is_leader else None,
                "raft_connected": peer.connected if peer else (name == node.name),
                "version": report.get("version", member.get("version")),
                "boot_id": report.get("boot_id", member.get("boot_id")),
                "last_contact": last_contact,
                "error": error,
            }
        )
    for address, peer in match.items():
        if address not in known_addresses:  # a Raft voter whose gateway never announced itself
            nodes.append(
                {
                    "name": None,
                    "raft_address": address,
                    "voter": True,
                    "role": "unknown",
                    "status": "alive" if peer.connected else "unreachable",
                    "raft_connected": peer.connected,
                    "match_index": peer.match_index if raft.is_leader else None,
                }
            )
    return {
        "node_name": node.name,
        "boot_id": node.boot_id,
        "role": raft.role,
        "leader": {"name": node.leader_name(), "raft_address": raft.leader}
        if raft.leader
        else None,
        "term": raft.term,
        "commit_index": me["commit_index"],
        "applied_index": me["applied_index"],
        "has_quorum": raft.has_quorum,
        "caught_up": me["caught_up"],
        "behind_by": me["behind_by"],
        "stale": me["stale"],
        "last_leader_contact": me["last_leader_contact"],
        "leader_contact_age_secs": me["leader_contact_age_secs"],
        "log_entries": raft.log_len,
        "unappliable_entries": raft.unappliable_entries,
        "refused_connections": raft.refused_connections,
        "dead_links": raft.dead_links,
        "snapshots_sent": raft.snapshots_sent,
        "node_count": len(nodes),
        "serving_nodes": node.serving_nodes(),
        "nodes": nodes,
        "stores": state.counts(),
        "rate_limit_backend": node.ratelimiter.backend,
        "quota_backend": node.quotas.backend,
        "shutdowns": list(state.shutdowns.values())[-5:],
    }


def open_breakers(report: dict[str, Any]) -> list[str]:
    """The WASM modules (ids) a node's breaker has turned off, from its /ha/local report."""
    modules = report.get("wasm") or {}
    return sorted(
        module_id
        for module_id, view in modules.items()
        if (view.get("breaker") or {}).get("state", "closed") != "closed"
    )


def health_problems(mesh: MeshRaft) -> list[str]:
    """Why the control plane is unhealthy here (no leader, quorum, or catch-up); empty if not."""
    raft = mesh.status()
    problems = []
    if raft.leader is None:
        problems.append("no leader")
    if not raft.has_quorum:
        problems.append("no quorum: a majority of voters is not reachable")
    if raft.stale:
        age = contact_age(raft)
        problems.append(
            "cut off from the leader: "
            + (f"no contact for {age:.1f} s" if age is not None else "no contact yet")
        )
    if not raft.ready:
        problems.append("not caught up with the leader yet")
    elif raft.commit_index - raft.applied_index > 2:
        problems.append(
            f"applied index trails the commit index by {raft.commit_index - raft.applied_index}"
        )
    elif (raft.behind_by or 0) > 2:
        problems.append(f"behind the leader's commit index by {raft.behind_by} entries")
    stalled = mesh.liveness_problem()
    if stalled:
        problems.append(stalled)
    return problems
