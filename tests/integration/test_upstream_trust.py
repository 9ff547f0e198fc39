"""What a node trusts of its workers and settings: no redirect followed, health paths only.

A worker (or whatever answers at its address) that redirects could send the
node, with the worker's credentials and the client's prompt, anywhere; a
health-check "endpoint" such as `@evil.example/x` would turn every health check
into a request to another host. Both attacks run here against real processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from node.proxy.failures import REDIRECTED
from tests.integration.conftest import Cluster
from tests.support import ROOT, free_port, wait_for

MODEL = "echo-model"
CHAT = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}


def _faults(worker: str, **settings: object) -> None:
    requests.post(worker + "/_faults", json=settings, timeout=5).raise_for_status()


def _stats(worker: str) -> dict:
    return requests.get(worker + "/_stats", timeout=5).json()  # type: ignore[no-any-return]


def test_the_node_never_follows_a_worker_s_redirect(cluster: Cluster) -> None:
    _, elsewhere = cluster.echo(model=MODEL)  # where the redirects point
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls",
        worker,
        "--health-check-interval-secs",
        "60",
        "--worker-startup-timeout-secs",
        "2",
        "--disable-circuit-breaker",
        "true",
    )
    _faults(worker, redirect_to=elsewhere)
    requests.post(elsewhere + "/_stats/reset", timeout=5).raise_for_status()

    chat = requests.post(node.url + "/v1/chat/completions", json=CHAT, timeout=15)
    assert chat.status_code == 503 and REDIRECTED in chat.json()["error"]["message"]
    stream = requests.post(
        node.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=15
    )
    assert stream.status_code == 503 and REDIRECTED in stream.text
    assert requests.get(node.url + "/get_model_info", timeout=10).status_code == 502
    health_generate = requests.get(node.url + "/health_generate", timeout=10)
    assert health_generate.status_code == 503 and health_generate.json()["reason"] == REDIRECTED
    info = requests.get(node.url + "/get_server_info", timeout=10).json()
    assert info["workers"][0]["error"] == REDIRECTED
    assert "did not answer" in requests.get(node.url + "/engine_metrics", timeout=10).text
    for fan_out in (
        requests.get(node.url + "/get_loads", timeout=10),
        requests.post(node.url + "/flush_cache", timeout=10),
    ):
        assert REDIRECTED in fan_out.text

    # discovery of a worker that redirects fails, and says why
    other_spelling = worker.replace("127.0.0.1", "localhost")
    added = requests.post(node.url + "/workers", json={"url": other_spelling}, timeout=10).json()

    def discovery_failed() -> str:
        view = requests.get(f"{node.url}/workers/{added['worker_id']}", timeout=5).json()
        return view["job_status"]["message"] if view["status"] == "failed" else ""

    assert REDIRECTED in wait_for(discovery_failed, what="discovery gave up")

    # health checks: a redirect is not healthy
    changed = requests.put(
        node.url + "/admin/config", json={"health_check_interval_secs": 0.2}, timeout=10
    )
    assert changed.status_code == 200

    def health_error() -> str:
        for view in requests.get(node.url + "/workers", timeout=5).json()["workers"]:
            if view["url"] == worker and not view["health"]["healthy"]:
                return str(view["health"]["last_error"])
        return ""

    assert REDIRECTED in wait_for(health_error, what="the redirecting worker marked unhealthy")

    assert _stats(worker)["redirected"] >= 10  # every path above did ask the worker
    assert _stats(elsewhere)["requests"] == {}  # and none followed it


BAD_PATHS = ("@evil.example/x", "//evil.example/x", "http://evil.example/x", "/a/../b", "/ a")


def test_health_check_endpoint_must_be_a_path_at_runtime(cluster: Cluster) -> None:
    node = cluster.node(ready=False)
    for bad in BAD_PATHS:
        resp = requests.put(node.url + "/admin/config", json={"health_check_endpoint": bad})
        assert resp.status_code == 400, bad
        error = resp.json()["error"]
        assert error["param"] == "health_check_endpoint" and "is not a path" in error["message"]
    shown = requests.get(node.url + "/admin/config", timeout=5).json()
    assert shown["config"]["health_check_endpoint"] == "/health"
    assert shown["version"] == 0  # nothing was committed
    good = requests.put(node.url + "/admin/config", json={"health_check_endpoint": "/healthz"})
    assert good.status_code == 200


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    argv = [sys.executable, "-m", "node.cli", "serve", "--port", str(free_port())]
    argv += ["--data-dir", str(tmp_path / "data"), *args]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    return done.returncode, done.stderr


def test_health_check_endpoint_must_be_a_path_in_flags_env_and_file(tmp_path: Path) -> None:
    code, err = _serve(tmp_path, "--health-check-endpoint", "@evil.example/x")
    assert code == 2 and "--health-check-endpoint" in err and "is not a path" in err
    env = {"MESHGATE_HEALTH_CHECK_ENDPOINT": "//evil.example/x", "PATH": "/usr/bin:/bin"}
    code, err = _serve(tmp_path, env=env)
    assert code == 2 and "MESHGATE_HEALTH_CHECK_ENDPOINT" in err
    config = tmp_path / "node.toml"
    config.write_text('health_check_endpoint = "http://evil.example/x"\n')
    code, err = _serve(tmp_path, "--config", str(config))
    assert code == 2 and "config file" in err and "is not a path" in err
