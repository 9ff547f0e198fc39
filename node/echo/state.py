"""Configuration and live state shared by every echo-worker handler.

One `WorkerState` per process holds what the handlers read (model id, limits,
fault settings) and what they count (requests per route, requests in flight,
tokens generated). Counting is plain integer arithmetic on the event loop; the
Prometheus view reads these numbers only when `/metrics` is scraped, so the
request path pays nothing for metrics.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from node.echo.faults import FaultInjector, FaultSettings
from node.echo.pd import PdRooms


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The fixed identity and defaults of one worker."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "echo-model"
    name: str = "echo-8000"
    max_tokens_default: int = 16
    embedding_dim: int = 32
    seed: int = 0
    # Credentials a caller must send (None: none needed): the `Authorization` values accepted.
    accepted_authorizations: tuple[str, ...] = ()
    # Reported in /get_server_info as SGLang reports its server args, secrets included:
    # what a gateway must never relay.
    api_key: str | None = None
    # A scripted chat reply instead of generated words, streamed this many characters a chunk.
    reply_text: str | None = None
    reply_chunk_chars: int = 3
    # Prefill/decode mode (node/echo/pd.py): "prefill", "decode" or None (a regular worker).
    disaggregation_mode: str | None = None
    bootstrap_port: int | None = None
    bootstrap_wait_s: float = 5.0
    started: int = field(default_factory=lambda: int(time.time()))


class WorkerState:
    """Counters, fault settings and id generation of a running worker."""

    def __init__(self, config: WorkerConfig, faults: FaultSettings | None = None) -> None:
        self.config = config
        self.faults = faults or FaultSettings()
        self.injector = FaultInjector(self.faults, config.seed)
        self.requests: dict[str, int] = {}
        self.requests_total: dict[str, int] = {}
        self.in_flight = 0
        self.generated_tokens = 0
        self.redirected = 0  # requests answered with the `redirect_to` fault
        self.last_x_headers: list[str] = []  # the `x-` header names of the last POST
        mode = config.disaggregation_mode
        self.pd = PdRooms(mode, config.bootstrap_wait_s) if mode else None
        self._id_prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EchoCollector(self))

    def new_id(self, prefix: str) -> str:
        """A process-unique id such as `chatcmpl-<hex>`, without a syscall per request."""
        return f"{prefix}{self._id_prefix}{next(self._ids):010x}"

    def count_request(self, route: str) -> None:
        self.requests[route] = self.requests.get(route, 0) + 1
        self.requests_total[route] = self.requests_total.get(route, 0) + 1

    def reported_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The usage the worker reports: the real one, or the fault's `total_tokens`."""
        claimed = self.faults.usage_total_tokens
        return usage if claimed is None else {**usage, "total_tokens": claimed}

    def reset_stats(self) -> None:
        """Zero the `/_stats` counters; Prometheus counters stay monotonic."""
        self.requests.clear()
        self.redirected = 0
        if self.pd is not None:
            self.pd.reset()

    def stats(self) -> dict[str, object]:
        stats: dict[str, object] = {
            "requests": dict(self.requests),
            "in_flight": self.in_flight,
            "redirected": self.redirected,
            "last_x_headers": self.last_x_headers,
            "name": self.config.name,
            "model": self.config.model,
        }
        if self.pd is not None:
            stats["pd"] = self.pd.stats()
        return stats


class _EchoCollector(Collector):
    """Exposes the worker's counters to its own Prometheus registry at scrape time."""

    def __init__(self, state: WorkerState) -> None:
        self._state = state

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        state = self._state
        requests = CounterMetricFamily(
            "echo_requests", "Requests received by the echo worker, by route.", labels=["route"]
        )
        for route, count in sorted(state.requests_total.items()):
            requests.add_metric([route], count)
        yield requests
        yield GaugeMetricFamily(
            "echo_in_flight_requests",
            "Inference requests being served right now.",
            value=state.in_flight,
        )
        yield CounterMetricFamily(
            "echo_generated_tokens",
            "Completion tokens (words) generated.",
            value=state.generated_tokens,
        )
