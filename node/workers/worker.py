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

# Fields of the replicated record that are never shown to clients.
SECRET_FIELDS = ("api_key",)


class Worker:
    __slots__ = (
        "auth_headers",
        "base_url",
        "breaker",
        "connection_mode",
        "cost",
        "failed_checks",
        "healthy",
        "id",
        "last_check",
        "last_error",
        "load",
        "model_id",
        "passed_checks",
        "priority",
        "record",
        "retired",
        "status",
        "url",
    )

    def __init__(self, record: dict[str, Any], breaker: BreakerSettings) -> None:
        self.id: str = record["id"]
        self.url: str = record["url"]
        self.base_url = self.url.rstrip("/")
        self.breaker = CircuitBreaker(breaker)
        self.load = 0  # requests this node has in flight to the worker
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
        key = record.get("api_key")
        self.auth_headers = {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def routable(self) -> bool:
        """Ready, healthy, speaks HTTP, and its circuit lets a request through."""
        return (
            self.status == "ready"
            and self.healthy
            and self.connection_mode == "http"
            and self.breaker.allows()
        )

    def view(self) -> dict[str, Any]:
        """The worker as the API shows it (no secrets)."""
        shown = {k: v for k, v in self.record.items() if k not in SECRET_FIELDS}
        shown["has_api_key"] = bool(self.record.get("api_key"))
        shown["is_healthy"] = self.healthy and self.status == "ready"
        shown["health"] = {
            "healthy": self.healthy,
            "consecutive_failures": self.failed_checks,
            "consecutive_successes": self.passed_checks,
            "last_check_unix": self.last_check,
            "last_error": self.last_error,
        }
        shown["load"] = self.load
        shown["circuit_breaker"] = self.breaker.snapshot()
        return shown
