"""The node's view of its processes' metrics: one series per label set, as a node of
one process shows it, so dashboards and alerts read a node the same however many
processes it runs.

Counters, histograms and summaries are summed over the processes (their `_created`
timestamps take the earliest). A gauge is a reading, so each has its rule below; a
gauge not named there is the control process's reading (the process that runs Raft,
health checks and peer polls), or, while it does not answer, the highest of the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from node.plane.siblings import CONTROL

Readings = Mapping[str, float]  # by process
Rule = Callable[[Readings], float]

SUMMED_TYPES: Final = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


def _total(readings: Readings) -> float:
    return sum(readings.values())


def _highest(readings: Readings) -> float:
    return max(readings.values())


def _lowest(readings: Readings) -> float:
    return min(readings.values())


def _control(readings: Readings) -> float:
    return readings.get(CONTROL, _highest(readings))


GAUGE_RULES: Final[dict[str, Rule]] = {
    # Each process holds its own slots, queue and upstream requests: the node's are the sum.
    "meshgate_admission_in_flight": _total,
    "meshgate_admission_queue_depth": _total,
    "meshgate_admission_rejected": _total,
    "meshgate_worker_in_flight": _total,
    # Each process counts what its local share of a rate limit admitted and refused.
    "meshgate_rate_limit_admitted": _total,
    "meshgate_rate_limit_rejected": _total,
    # Each process keeps its own circuit breakers: the node shows the worst one.
    "meshgate_circuit_breaker_state": _highest,
    "meshgate_wasm_breaker_open": _highest,
    # Ready or connected only while every process is.
    "meshgate_wasm_module_ready": _lowest,
    "meshgate_rate_limit_redis_up": _lowest,
    # The rest (meshgate_raft_*, meshgate_mesh_*, meshgate_node_draining,
    # meshgate_worker_healthy): the control process's reading, see _rule.
}


def _rule(family: Metric, sample: str) -> Rule:
    if sample.endswith("_created"):
        return _lowest  # the series has existed since its first process made it
    if family.type in SUMMED_TYPES:
        return _total
    return GAUGE_RULES.get(family.name, _control)


Key = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and labels


def node_view(texts: Mapping[str, str]) -> list[Metric]:
    """Every process's exposition text (by process name) as the node's families."""
    families: dict[str, Metric] = {}
    readings: dict[str, dict[Key, dict[str, float]]] = {}
    for process, text in texts.items():
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                readings[family.name] = {}
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                readings[family.name].setdefault(key, {})[process] = sample.value
    for name, family in families.items():
        _add_combined(family, readings[name].items())
    return list(families.values())


def _add_combined(family: Metric, series: Iterable[tuple[Key, dict[str, float]]]) -> None:
    for (sample, labels), by_process in series:
        family.add_sample(sample, dict(labels), _rule(family, sample)(by_process))
