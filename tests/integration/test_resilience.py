"""Failover, retries, circuit breakers, health checks and broken streams, with real processes."""

from __future__ import annotations

from collections import Counter

import requests

from tests.integration.conftest import Cluster
from tests.support import wait_for

MODEL = "echo-model"
CHAT = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}


# Health checks that mark a worker down or up within about half a second.
FAST_HEALTH = (
    "--health-check-interval-secs",
    "0.2",
    "--health-failure-threshold",
    "2",
    "--health-success-threshold",
    "2",
)


def _chat(url: str, **extra: object) -> requests.Response:
    return requests.post(url + "/v1/chat/completions", json={**CHAT, **extra}, timeout=15)


def _workers(url: str) -> dict[str, dict]:
    return {w["url"]: w for w in requests.get(url + "/workers", timeout=5).json()["workers"]}


def _faults(worker_url: str, **settings: object) -> None:
    assert requests.post(worker_url + "/_faults", json=settings, timeout=5).status_code == 200


def test_failover_when_a_worker_dies(cluster: Cluster) -> None:
    victim, victim_url = cluster.echo(model=MODEL)
    _, survivor_url = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        victim_url,
        survivor_url,
        "--policy",
        "round_robin",
        "--health-check-interval-secs",
        "60",
    )
    assert len({_chat(node.url).headers["x-meshgate-worker"] for _ in range(4)}) == 2
    victim.kill()
    statuses = Counter(_chat(node.url).status_code for _ in range(40))
    assert statuses == {200: 40}
    survivor_id = _workers(node.url)[survivor_url]["id"]
    assert {_chat(node.url).headers["x-meshgate-worker"] for _ in range(5)} == {survivor_id}


def test_retryable_status_is_retried_on_another_worker(cluster: Cluster) -> None:
    _, flaky = cluster.echo(model=MODEL)
    _, good = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", flaky, good, "--policy", "round_robin")
    _faults(flaky, fail_status=503)
    assert Counter(_chat(node.url).status_code for _ in range(10)) == {200: 10}
    metrics = requests.get(node.url + "/metrics", timeout=5).text
    assert (
        'meshgate_upstream_retries_total{node="node-1",reason="status",route="/v1/chat/completions"}'
        in metrics
    )


def test_client_errors_are_not_retried(cluster: Cluster) -> None:
    _w, url = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", url)
    requests.post(url + "/_stats/reset", timeout=5)
    resp = requests.post(
        node.url + "/v1/chat/completions", json={"model": MODEL, "messages": []}, timeout=5
    )
    assert resp.status_code == 400  # the worker's answer, relayed once
    stats = requests.get(url + "/_stats", timeout=5).json()
    assert stats["requests"].get("/v1/chat/completions") == 1


def test_all_workers_failing_returns_their_error_after_retries(cluster: Cluster) -> None:
    _, url = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        url,
        "--retry-max-retries",
        "3",
        "--retry-initial-backoff-ms",
        "1",
        "--disable-circuit-breaker",
        "true",
    )
    _faults(url, fail_status=502)
    requests.post(url + "/_stats/reset", timeout=5)
    resp = _chat(node.url)
    assert resp.status_code == 502
    assert requests.get(url + "/_stats", timeout=5).json()["requests"]["/v1/chat/completions"] == 3


def test_circuit_breaker_opens_half_opens_and_closes(cluster: Cluster) -> None:
    _, bad = cluster.echo(model=MODEL)
    _, good = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        bad,
        good,
        "--policy",
        "round_robin",
        "--cb-failure-threshold",
        "3",
        "--cb-success-threshold",
        "2",
        "--cb-timeout-duration-secs",
        "1",
        "--retry-initial-backoff-ms",
        "1",
    )
    bad_id = _workers(node.url)[bad]["id"]

    def breaker() -> str:
        return _workers(node.url)[bad]["circuit_breaker"]["state"]

    _faults(bad, fail_status=500)
    for _ in range(8):
        assert _chat(node.url).status_code == 200  # retried onto the good worker
    assert breaker() == "open"
    requests.post(bad + "/_stats/reset", timeout=5)
    served = {_chat(node.url).headers["x-meshgate-worker"] for _ in range(6)}
    assert bad_id not in served  # an open circuit gets no traffic
    assert requests.get(bad + "/_stats", timeout=5).json()["requests"] == {}

    _faults(bad, fail_status=None)
    wait_for(lambda: breaker() == "half_open", timeout=5, what="half-open after the timeout")
    wait_for(
        lambda: _chat(node.url).status_code == 200 and breaker() == "closed",
        timeout=10,
        what="closed after trial successes",
    )
    assert bad_id in {_chat(node.url).headers["x-meshgate-worker"] for _ in range(4)}
    metrics = requests.get(node.url + "/metrics", timeout=5).text
    assert (
        f'meshgate_circuit_breaker_state{{node="node-1",url="{bad}",worker="{bad_id}"}} 0.0'
        in metrics
    )


def test_health_checks_take_a_worker_out_and_back(cluster: Cluster) -> None:
    _, sick = cluster.echo(model=MODEL)
    _, well = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        sick,
        well,
        *FAST_HEALTH,
    )
    _faults(sick, health_status=503)
    wait_for(lambda: not _workers(node.url)[sick]["is_healthy"], what="sick marked unhealthy")
    well_id = _workers(node.url)[well]["id"]
    assert {_chat(node.url).headers["x-meshgate-worker"] for _ in range(6)} == {well_id}
    _faults(well, health_status=503)
    wait_for(
        lambda: requests.get(node.url + "/health", timeout=5).json()["workers"]["healthy"] == 0,
        what="no healthy worker left",
    )
    # Static stability: still ready (the control plane stays reachable through a load
    # balancer), degraded, and inference answers 503 naming the cause.
    assert requests.get(node.url + "/readiness", timeout=5).status_code == 200
    assert requests.get(node.url + "/health", timeout=5).json()["status"] == "degraded"
    refused = _chat(node.url)
    assert refused.status_code == 503 and "no healthy worker" in refused.text
    _faults(sick, health_status=200)
    _faults(well, health_status=200)
    node.wait_ready()


def test_readiness_requires_workers_takes_a_node_without_one_out(cluster: Cluster) -> None:
    """The old rule, on request: unready while no worker is healthy (and ready again after)."""
    _, url = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", url, "--readiness-requires-workers", "true", *FAST_HEALTH)
    _faults(url, health_status=503)
    wait_for(
        lambda: requests.get(node.url + "/readiness", timeout=5).status_code == 503,
        what="not ready without a healthy worker",
    )
    assert requests.get(node.url + "/readiness", timeout=5).json()["reasons"] == [
        "no healthy worker"
    ]
    _faults(url, health_status=200)
    node.wait_ready()


def test_stream_cut_midway_ends_with_an_error_event(cluster: Cluster) -> None:
    _, url = cluster.echo("--cut-stream-after", "3", model=MODEL)
    node = cluster.node("--worker-urls", url)
    with requests.post(
        node.url + "/v1/chat/completions",
        stream=True,
        timeout=15,
        json={**CHAT, "max_tokens": 10, "stream": True},
    ) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-2] == b"event: error"
    assert b"stream_interrupted" in lines[-1]
    assert b"data: [DONE]" not in lines
    assert sum(1 for line in lines if b'"content"' in line) >= 3  # the part before the cut arrived


def test_stream_is_retried_when_the_worker_fails_before_the_first_byte(cluster: Cluster) -> None:
    _, broken = cluster.echo(model=MODEL)
    _, good = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", broken, good, "--policy", "round_robin")
    _faults(broken, fail_status=503)
    for _ in range(4):
        with requests.post(
            node.url + "/v1/chat/completions",
            stream=True,
            timeout=15,
            json={**CHAT, "stream": True},
        ) as resp:
            assert resp.status_code == 200
            assert [ln for ln in resp.iter_lines() if ln][-1] == b"data: [DONE]"
