"""A node's processes' metrics merged into one exposition, each sample labelled."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from node.metrics import Metrics
from node.plane.node_metrics import merge


def test_each_process_keeps_its_series_under_one_family() -> None:
    one, two = Metrics("n1"), Metrics("n1")
    one.request("chat", "m", 200, 0.1)
    two.request("chat", "m", 200, 0.2)
    two.request("chat", "m", 500, 0.2)
    text = merge({"p1": one.render().decode(), "p2": two.render().decode()}).decode()
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
