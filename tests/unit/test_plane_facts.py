"""`plane_facts`: the control process's view of its workers, drain and stop, for the data plane."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from node.plane.facts import PlaneFacts, WorkerFacts, plane_facts
from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.pool import WorkerPool


def record(worker_id: str, port: int) -> dict[str, Any]:
    return {"id": worker_id, "url": f"http://10.0.0.1:{port}", "status": "ready"}


def test_health_reason_and_breaker_per_worker_then_drain_and_stop() -> None:
    pool = WorkerPool(BreakerSettings(failure_threshold=1), CredentialBox("k" * 40))
    pool.sync({"new": record("new", 1), "sick": record("sick", 2), "fine": record("fine", 3)})
    sick, fine = pool.get("sick"), pool.get("fine")
    assert sick is not None and fine is not None
    sick.healthy, sick.last_check, sick.last_error = False, 1.0, "connection refused"
    sick.breaker.record_failure()
    fine.last_check, fine.last_error = 2.0, "an old error, since recovered"
    stopper: Any = SimpleNamespace(requested=False)
    draining = [False]
    facts = plane_facts(pool, lambda: draining[0], stopper)
    assert facts == PlaneFacts(
        {
            "new": WorkerFacts("unknown", "", "closed"),
            "sick": WorkerFacts("unhealthy", "connection refused", "open"),
            "fine": WorkerFacts("healthy", "", "closed"),
        }
    )
    draining[0], stopper.requested = True, True
    facts = plane_facts(pool, lambda: draining[0], stopper)
    assert facts.draining and facts.shutting_down
