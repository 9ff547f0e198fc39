"""Node-local hot facts the control process shares with its data-plane processes.

Health checks and breakers run in the control process only; a data-plane process
reads their verdicts from here instead of probing every worker again itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from node.ha.shutdown import Stopper
    from node.workers.pool import WorkerPool

HEALTHY: Final = "healthy"
UNHEALTHY: Final = "unhealthy"
UNKNOWN: Final = "unknown"  # not checked yet


@dataclass(frozen=True)
class WorkerFacts:
    health: str  # HEALTHY | UNHEALTHY | UNKNOWN
    reason: str  # why it is unhealthy (the last check's error); "" otherwise
    breaker: str  # closed | open | half_open


@dataclass(frozen=True)
class PlaneFacts:
    workers: dict[str, WorkerFacts] = field(default_factory=dict)
    draining: bool = False
    shutting_down: bool = False


def plane_facts(pool: WorkerPool, is_draining: Callable[[], bool], stopper: Stopper) -> PlaneFacts:
    """What the control process knows now of its workers, its drain and its stop."""
    workers = {}
    for worker in pool.all():
        health = HEALTHY if worker.healthy else UNHEALTHY
        if worker.last_check is None:
            health = UNKNOWN
        reason = worker.last_error or "" if health == UNHEALTHY else ""
        workers[worker.id] = WorkerFacts(health, reason, worker.breaker.state)
    return PlaneFacts(workers, is_draining(), stopper.requested)
