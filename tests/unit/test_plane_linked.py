"""A data-plane process's pool takes worker health from its control process's facts,
and its readiness waits for the link."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mesh.raft import RaftStatus
from node.loaded_state import LoadedState
from node.plane.facts import PlaneFacts, WorkerFacts
from node.plane.linked import NOT_LINKED, health_verdicts, linked_state
from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.pool import WorkerPool


def test_the_pool_takes_the_control_process_health_checks_but_keeps_its_breakers() -> None:
    pool = WorkerPool(BreakerSettings(failure_threshold=1), CredentialBox("k" * 40))
    ready = {"status": "ready"}
    pool.sync({w: {"id": w, "url": f"http://10.0.0.1:{i}", **ready} for i, w in enumerate("abc")})
    own = pool.get("c")
    assert own is not None
    own.breaker.record_failure()  # this process's own request failed
    facts = PlaneFacts(
        {
            "a": WorkerFacts("unhealthy", "connection refused", "open"),
            "b": WorkerFacts("unknown", "", "closed"),
            "c": WorkerFacts("healthy", "", "closed"),
            "gone": WorkerFacts("healthy", "", "closed"),  # removed here already: ignored
        }
    )
    pool.take_health(health_verdicts(facts))
    a, b = pool.get("a"), pool.get("b")
    assert a is not None and b is not None
    assert (a.healthy, a.last_error, a.breaker.state) == (False, "connection refused", "closed")
    assert b.healthy  # not checked yet: optimistic, as before any check
    assert own.healthy and own.breaker.state == "open"


def test_not_linked_is_not_ready_whatever_the_status_says(tmp_path: Path) -> None:
    status = RaftStatus(None, "follower", "x", 1, 5, 5, 5, True, 5, True)
    replica: Any = SimpleNamespace(linked=False, status=lambda: status)
    state = linked_state(replica, LoadedState(tmp_path, replica.status))
    assert state.problem() == NOT_LINKED and not state.loaded()
    replica.linked = True
    assert state.problem() is None and state.loaded()
