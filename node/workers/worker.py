"""A worker as this node sees it: the replicated record plus local hot state.

The record (url, model, priority...) comes from the Raft state and is
replaced when a command changes it; health, circuit breaker and the count of
requests in flight are this node's own observations and survive such
replacements. Attributes are plain slots because the router reads them on
every request.
"""

from __future__ import annotations

from typing import Any

from node.workers.breaker import BreakerSettings, CircuitBreaker
from node.workers.credentials import CredentialBox, safe_url

# Fields of the replicated record that are never shown to clients.
SECRET_FIELDS = ("api_key",)


def shown_record(record: dict[str, Any]) -> dict[str, Any]:
    """A replicated worker record as the API shows it: no credential, no userinfo."""
    shown = {k: v for k, v in record.items() if k not in SECRET_FIELDS}
    shown["url"] = safe_url(record["url"])
    shown["has_api_key"] = bool(record.get("api_key"))
    return shown


class Worker:
    __slots__ = (
        "auth_headers",
        "base_url",
        "breaker",
        "connection_mode",
        "cost",
        "credential_problem",
        "credentials",
        "engine_load",
        "failed_checks",
        "healthy",
        "id",
        "in_flight",
        "last_check",
        "last_error",
        "model_id",
        "passed_checks",
        "priority",
        "record",
        "retired",
        "status",
        "target",
        "url",
        "worker_type",
    )

    def __init__(
        self, record: dict[str, Any], breaker: BreakerSettings, credentials: CredentialBox
    ) -> None:
        self.id: str = record["id"]
        self.credentials = credentials
        self.breaker = CircuitBreaker(breaker)
        self.in_flight = 0  # requests this node has in flight to the worker
        self.engine_load = 0  # the others' requests the engine last reported (gRPC GetLoads)
        self.healthy = True  # optimistic until checks say otherwise
        self.failed_checks = 0
        self.passed_checks = 0
        self.last_check: float | None = None
        self.last_error: str | None = None
        self.retired = False
        self.update(record)

    def update(self, record: dict[str, Any]) -> None:
        """Take a new version of the replicated record, keeping local observations."""
        self.record = record
        self.model_id: str | None = record.get("model_id")
        self.priority: int = record.get("priority", 50)
        self.cost: float = record.get("cost", 1.0)
        self.status: str = record.get("status", "pending")
        self.connection_mode: str = record.get("connection_mode", "http")
        self.worker_type: str = record.get("worker_type", "regular")  # or prefill, decode
        # The URL without userinfo (shown, logged, called) and the credential, opened once.
        self.target = target = self.credentials.target(record)
        self.url = self.base_url = target.url
        self.auth_headers = target.headers
        self.credential_problem = target.problem

    @property
    def load(self) -> int:
        """What load-aware policies compare: this node's requests in flight to the worker,
        plus the other requests its engine last reported running or waiting (gRPC)."""
        return self.in_flight + self.engine_load

    @load.setter
    def load(self, value: int) -> None:  # `worker.load += 1` counts a request of this node
        self.in_flight = value - self.engine_load

    @property
    def routable(self) -> bool:
        """Ready, healthy, and its circuit lets a request through (HTTP and gRPC workers
        alike: the forwarder speaks both)."""
        return self.status == "ready" and self.healthy and self.breaker.allows()

    def view(self) -> dict[str, Any]:
        """The worker as the API shows it (no secrets)."""
        shown = shown_record(self.record)
        if self.credential_problem:
            shown["credential_problem"] = self.credential_problem
        shown["is_healthy"] = self.healthy and self.status == "ready"
        shown["health"] = {
            "healthy": self.healthy,
            "consecutive_failures": self.failed_checks,
            "consecutive_successes": self.passed_checks,
            "last_check_unix": self.last_check,
            "last_error": self.last_error,
        }
        shown["load"] = self.load
        shown["in_flight"] = self.in_flight
        if self.connection_mode == "grpc":
            shown["engine_load"] = self.engine_load
        shown["circuit_breaker"] = self.breaker.snapshot()
        return shown
