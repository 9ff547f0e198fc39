"""A node's processes' metrics merged into one exposition: the node's view (one series
per label set) or each process's (labelled `process`)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from node.metrics import Metrics
from node.plane.node_metrics import by_process, render
from node.plane.node_view import node_view


def _processes() -> dict[str, str]:
    one, two, control = Metrics("n1"), Metrics("n1"), Metrics("n1")
    one.request("chat", "m", 200, 0.1)
    two.request("chat", "m", 200, 0.2)
    two.request("chat", "m", 500, 0.2)
    gauges = {  # (process's metrics, in flight, breaker state, applied index)
        "p1": (one, 2.0, 0.0, 7.0),
        "p2": (two, 1.0, 2.0, 6.0),
        "control": (control, 0.0, 0.0, 9.0),
    }
    for metrics, load, breaker, applied in gauges.values():
        labels = {"worker": "w1"}
        metrics.add_gauges(
            lambda load=load, breaker=breaker, applied=applied, labels=labels: iter(
                [
                    ("meshgate_worker_in_flight", "in flight", labels, load),
                    ("meshgate_circuit_breaker_state", "state", labels, breaker),
                    ("meshgate_raft_applied_index", "applied", {}, applied),
                ]
            )
        )
    return {process: m.render().decode() for process, (m, *_) in gauges.items()}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_node_view_sums_counts_and_combines_each_gauge_by_its_rule() -> None:
    texts = _processes()
    text = render(node_view(texts)).decode()
    assert "process=" not in text
    assert text.count("# TYPE meshgate_requests_total counter") == 1
    samples = _samples(text)
    base = (("model", "m"), ("node", "n1"), ("route", "chat"))
    assert samples[("meshgate_requests_total", (*base, ("status", "200")))] == 2.0
    assert samples[("meshgate_requests_total", (*base, ("status", "500")))] == 1.0
    route = (("node", "n1"), ("route", "chat"))
    assert samples[("meshgate_request_duration_seconds_count", route)] == 3.0
    bucket = (("le", "0.1"), *route)
    assert samples[("meshgate_request_duration_seconds_bucket", bucket)] == 1.0
    worker = tuple(sorted((("node", "n1"), ("worker", "w1"))))
    assert samples[("meshgate_worker_in_flight", worker)] == 3.0  # summed
    assert samples[("meshgate_circuit_breaker_state", worker)] == 2.0  # the worst
    assert samples[("meshgate_raft_applied_index", (("node", "n1"),))] == 9.0  # the control's
    # Without the control's answer, the highest of the rest.
    del texts["control"]
    alone = _samples(render(node_view(texts)).decode())
    assert alone[("meshgate_raft_applied_index", (("node", "n1"),))] == 7.0
    # The same series as one process shows.
    single = _samples(texts["p2"])
    assert {k for k in _samples(render(node_view(_processes())).decode())} == set(single)


def test_by_process_keeps_each_process_series_under_one_family() -> None:
    text = render(by_process(_processes())).decode()
    assert text.count("# TYPE meshgate_requests_total counter") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counted = {
        (s.labels["process"], s.labels["status"]): s.value
        for s in families["meshgate_requests"].samples
        if s.name == "meshgate_requests_total"
    }
    assert counted == {("p1", "200"): 1.0, ("p2", "200"): 1.0, ("p2", "500"): 1.0}
    latency = families["meshgate_request_duration_seconds"].samples
    assert {s.labels["process"] for s in latency} == {"p1", "p2"}
