"""Readiness: can this node serve the data plane right now, and if not, why not.

Readiness describes the data plane only (static stability). A node that is not
draining and has a state to serve from (`node.loaded_state`) is ready, with or
without a leader or quorum: losing the control plane must not take the data plane
out of the load balancer. It stays ready with no healthy worker too (inference
answers 503, and the control plane stays reachable so an operator can add a
worker), unless `--readiness-requires-workers` asks for the old behaviour.
`/ha/health` describes the control plane (`node.ha.report.health_problems`).

It is computed from readings, not from the node, so the probes (`node.api.health`),
the admin API and this node's report to its peers (`node.ha.report`) give the same
answer without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mesh.raft import RaftStatus
from node.loaded_state import LoadedState
from node.workers.worker import Worker

NO_WORKER = "no healthy worker"


def readiness_problems(
    draining: bool,
    unloaded: str | None,
    workers: Iterable[Worker],
    requires_workers: bool = False,
    wasm_missing: str | None = None,
) -> list[str]:
    """Why this node is not ready, in words for an operator; empty when it is ready.
    `unloaded` is why it has no state to serve from (`LoadedState.problem`), or None;
    `wasm_missing` why it cannot run the mesh's WASM modules (`node.wasm_required`)."""
    problems = []
    if draining:
        problems.append("node is draining")
    if unloaded:
        problems.append(unloaded)
    if wasm_missing:
        problems.append(wasm_missing)
    if requires_workers and not any(w.routable for w in workers):
        problems.append(NO_WORKER)
    return problems


def degraded_problems(raft: RaftStatus, workers: Iterable[Worker]) -> list[str]:
    """What a ready node still lacks to be fully healthy (`/health` says "degraded")."""
    problems = []
    if raft.leader is None:
        problems.append("the mesh has no leader")
    if not any(w.routable for w in workers):
        problems.append(NO_WORKER)
    return problems


class Readiness:
    """The node's readiness and health, from the parts they read."""

    def __init__(
        self,
        loaded: LoadedState,
        status: Callable[[], RaftStatus],
        workers: Callable[[], Iterable[Worker]],
        draining: Callable[[], bool],
        requires_workers: bool,
        wasm_missing: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.loaded = loaded
        self._status = status
        self._workers = workers
        self._draining = draining
        self.requires_workers = requires_workers
        self._wasm_missing = wasm_missing

    def problems(self) -> list[str]:
        """Why the node should take no traffic now (`/readiness`, `/ha/local`)."""
        unloaded = self.loaded.problem()
        return readiness_problems(
            self._draining(),
            unloaded,
            self._workers(),
            self.requires_workers,
            self._wasm_missing(),
        )

    def health_problems(self) -> list[str]:
        """The readiness problems, then what else is missing (`/health`)."""
        problems = self.problems()
        extra = degraded_problems(self._status(), self._workers())
        return problems + [p for p in extra if p not in problems]
