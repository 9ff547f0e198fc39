"""Readiness: can this node serve the data plane right now, and if not, why not.

Readiness describes the data plane only (static stability): a node that has
applied the mesh's state once, sees a healthy worker and is not draining keeps
serving through a lost quorum. It is computed from three readings, not from the
node, so the probes (`node.api.health`), the admin API and this node's report
to its peers (`node.ha.report`) give the same answer without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable

from mesh.raft import RaftStatus
from node.workers.worker import Worker


def readiness_problems(draining: bool, raft: RaftStatus, workers: Iterable[Worker]) -> list[str]:
    """Why this node is not ready, in words for an operator; empty when it is ready."""
    problems = []
    if draining:
        problems.append("node is draining")
    if not raft.ready:
        problems.append("control state has not caught up with the mesh yet")
    elif raft.leader is None:
        problems.append("the mesh has no leader")
    if not any(w.routable for w in workers):
        problems.append("no healthy worker")
    return problems
