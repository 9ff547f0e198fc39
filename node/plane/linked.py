"""What a data-plane Node reads of its replica beyond what it reads of MeshRaft: whether
it is linked to the control process, and the control process's hot facts."""

from __future__ import annotations

from typing import Protocol

from mesh.raft import RaftStatus
from node.loaded_state import LoadedState
from node.plane.facts import HEALTHY, UNKNOWN, PlaneFacts

NOT_LINKED = "not linked to this node's control process yet"
# A link down longer than this is not a reconnect in passing (a frozen or dead control
# process): requests stop waiting for it and are answered at once.
RECONNECT_GRACE = 1.0


class Replica(Protocol):
    """The stand-in for MeshRaft in a data-plane process (node/plane/data_side.py)."""

    @property
    def linked(self) -> bool: ...

    def status(self) -> RaftStatus: ...

    def down_for(self) -> float: ...


class LinkedState:
    """LoadedState's rule, preceded by the link: a replica that lost its control process
    has no state it may vouch for until a new snapshot catches it up."""

    def __init__(self, replica: Replica, loaded: LoadedState) -> None:
        self._replica = replica
        self._loaded = loaded

    def problem(self) -> str | None:
        if not self._replica.linked:
            return NOT_LINKED
        return self._loaded.problem()

    def loaded(self) -> bool:
        return self.problem() is None

    def worth_waiting(self) -> bool:
        """Will a request that waits for the state soon have it? Not from a link down
        for long (a data-plane process listens only once it has linked)."""
        return self._replica.down_for() < RECONNECT_GRACE


def linked_state(replica: Replica, loaded: LoadedState) -> LinkedState:
    return LinkedState(replica, loaded)


def health_verdicts(facts: PlaneFacts) -> dict[str, tuple[bool | None, str]]:
    """The control process's health checks (PlaneFacts.workers) as WorkerPool.take_health
    takes them: healthy, unhealthy, or None while not checked yet."""
    verdicts: dict[str, tuple[bool | None, str]] = {}
    for worker_id, fact in facts.workers.items():
        healthy = None if fact.health == UNKNOWN else fact.health == HEALTHY
        verdicts[worker_id] = (healthy, fact.reason)
    return verdicts
