"""Prometheus metrics, all prefixed `meshgate_` and labelled with this node's name.

Request counters and latency histograms are updated on the hot path through
cached label children. Everything that is a reading of current state (worker
health, circuit breakers, admission queue, Raft indexes) is collected at
scrape time from the live objects, so it can never go stale or leak the label
sets of removed workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from node.traffic.ring import TrafficRing

# WASM outcomes in which the module did not run: they count, but have no duration.
NOT_RUN = frozenset({"skipped", "too_large", "busy"})
WASM_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "meshgate_requests",
            "Requests answered, by route, model and status",
            ["node", "route", "model", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "meshgate_request_duration_seconds",
            "Time to the end of the response",
            ["node", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._ttft = Histogram(
            "meshgate_time_to_first_token_seconds",
            "Time to the first streamed byte",
            ["node", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._retries = Counter(
            "meshgate_upstream_retries",
            "Upstream attempts that were retried",
            ["node", "route", "reason"],
            registry=self.registry,
        )
        self._parse_failures = Counter(
            "meshgate_output_parse_failures",
            "Worker answers whose reasoning or tool-call parsing failed (relayed as they came)",
            ["node"],
            registry=self.registry,
        )
        self._wasm_calls = Counter(
            "meshgate_wasm_calls",
            "WASM middleware calls, by module, attach point and outcome "
            "(continue, modify, reject, error, skipped: its breaker was open)",
            ["node", "module", "point", "outcome"],
            registry=self.registry,
        )
        self._wasm_latency = Histogram(
            "meshgate_wasm_call_duration_seconds",
            "Time of one WASM middleware call",
            ["node", "module", "point"],
            buckets=WASM_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        # An inference request's counter and latency children, by (route, model, status):
        # one lookup per request instead of two, and no label tuple or str(status) built.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.traffic = TrafficRing()  # the same requests, for /ha/traffic

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.node, *labels)
        return child

    def request(
        self,
        route: str,
        model: str,
        status: int,
        seconds: float,
        ttft: float | None = None,
        own: bool = False,
    ) -> None:
        """One inference request answered (`own`: by the node itself, not a worker)."""
        children = self._request_children.get((route, model, status))
        if children is None:
            children = self._request_children[(route, model, status)] = (
                self._child(self._requests, route, model, str(status)),
                self._child(self._latency, route),
            )
        children[0].inc()
        children[1].observe(seconds)
        self.traffic.record(model, status, seconds, ttft, own)

    def first_token(self, route: str, seconds: float) -> None:
        self._child(self._ttft, route).observe(seconds)

    def retry(self, route: str, reason: str) -> None:
        self._child(self._retries, route, reason).inc()

    def wasm_call(self, module: str, point: str, outcome: str, seconds: float) -> None:
        self._child(self._wasm_calls, module, point, outcome).inc()
        if outcome not in NOT_RUN:
            self._child(self._wasm_latency, module, point).observe(seconds)

    def parse_failed(self) -> None:
        self._child(self._parse_failures).inc()

    def add_gauges(
        self, read: Callable[[], Iterator[tuple[str, str, dict[str, str], float]]]
    ) -> None:
        """Register a scrape-time reader yielding (name, help, labels, value)."""
        self.registry.register(_GaugeReader(self.node, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> dict[str, Any]:
        """Totals and latency percentiles over every route, for `/info`."""
        total = errors = retries = 0.0
        buckets: dict[float, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == "meshgate_requests_total":
                    total += sample.value
                    if sample.labels.get("status", "").startswith("5"):
                        errors += sample.value
                elif sample.name == "meshgate_upstream_retries_total":
                    retries += sample.value
                elif sample.name == "meshgate_request_duration_seconds_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return {
            "total_requests": int(total),
            "error_count": int(errors),
            "retries": int(retries),
            **{f"p{q}_latency_ms": _quantile(buckets, q / 100) for q in (50, 95, 99)},
        }


def _quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound (ms) of the histogram bucket holding quantile q, or None without data."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] == 0:
        return None
    target = ordered[-1][1] * q
    for bound, count in ordered:
        if count >= target:
            return None if bound == float("inf") else round(bound * 1000, 3)
    return None


class _GaugeReader(Collector):
    def __init__(
        self, node: str, read: Callable[[], Iterator[tuple[str, str, dict[str, str], float]]]
    ):
        self.node = node
        self.read = read

    def describe(self) -> list[Any]:
        return []  # values are read at scrape time; nothing to pre-declare

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text, labels, value in self.read():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    name, help_text, labels=["node", *labels]
                )
            family.add_metric([self.node, *labels.values()], value)
        yield from families.values()
