"""A node with `meshgate grpc-echo-worker`s registered as grpc:// workers: discovery
(model info and the tokenizer from each place it may come from), health, load,
and the /flush_cache and /get_loads fan-outs over gRPC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from node.localmesh import GrpcEchoWorker
from tests.grpc_wire import recorded
from tests.integration.conftest import Cluster
from tests.support import Node, free_port, wait_for
from tests.tokenizer_files import build_tokenizer_dir

KEY = "grpc-worker-key"
BASE_LOAD = 3
STARTUP_SECS = 3.0


@pytest.fixture(scope="module")
def env(module_cluster: Cluster) -> Iterator[dict[str, Any]]:
    tmp = module_cluster.tmp_path
    tok_dir = build_tokenizer_dir(tmp / "tok")
    record = tmp / "keyed.jsonl"
    keyed = module_cluster.grpc_echo(
        tok_dir, "--api-key", KEY, "--load", str(BASE_LOAD), "--record-file", str(record)
    )
    node = module_cluster.node(
        "--worker-startup-timeout-secs", str(STARTUP_SECS),
        "--worker-startup-check-interval", "0.2",
        "--health-check-interval-secs", "0.3",
        "--health-failure-threshold", "1",
        "--health-success-threshold", "1",
        "--health-check-timeout-secs", "1",
        ready=False,  # serving: "ready" needs a healthy worker
    )  # fmt: skip
    yield {"node": node, "tok": tok_dir, "keyed": keyed, "record": record, "c": module_cluster}


def _add(node: Node, body: dict[str, Any]) -> str:
    resp = requests.post(node.url + "/workers", json=body, timeout=5)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["worker_id"])


def _worker(node: Node, worker_id: str) -> dict[str, Any]:
    return requests.get(f"{node.url}/workers/{worker_id}", timeout=5).json()  # type: ignore[no-any-return]


def _settled(node: Node, worker_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        shown = _worker(node, worker_id)
        return shown if shown["status"] in ("ready", "failed") else None

    return wait_for(done, timeout=STARTUP_SECS + 10, what=f"discovery of {worker_id}")  # type: ignore[no-any-return]


def test_without_tokenizer_path_the_tokenizer_comes_from_get_tokenizer(
    env: dict[str, Any],
) -> None:
    node, keyed = env["node"], env["keyed"]
    worker_id = _add(node, {"url": keyed.url, "api_key": KEY})
    shown = _settled(node, worker_id)
    assert shown["status"] == "ready", shown["job_status"]
    assert shown["model_id"] == "echo-model"
    metadata = shown["metadata"]
    assert metadata["max_context_length"] == 4096 and metadata["eos_token_ids"]
    assert metadata["server_type"] == "grpc" and metadata["protocol"] == "sglang-grpc"
    digest = metadata["tokenizer"]["sha256"]
    assert metadata["tokenizer"]["source"] == "worker"
    assert shown["tokenizer_loaded"] is True
    assert (node.data_dir / "blobs" / "sha256" / digest).is_file()
    assert len(recorded(env["record"], "get_tokenizer")) == 1
    # Health and load come over gRPC: HealthCheck, and GetLoads' running requests.
    healthy = wait_for(lambda: _worker(node, worker_id).get("engine_load") == BASE_LOAD)
    assert healthy and _worker(node, worker_id)["health"]["healthy"]
    assert _worker(node, worker_id)["load"] == BASE_LOAD
    models = requests.get(node.url + "/v1/models", timeout=5).json()
    assert "echo-model" in [m["id"] for m in models["data"]]
    env["keyed_id"] = worker_id


def test_flush_cache_and_get_loads_fan_out_over_grpc(env: dict[str, Any]) -> None:
    node = env["node"]
    worker_id = env.get("keyed_id") or pytest.skip("needs the keyed worker")
    flushed = requests.post(node.url + "/flush_cache", timeout=10)
    assert flushed.status_code == 200, flushed.text
    result = next(r for r in flushed.json()["results"] if r["worker_id"] == worker_id)
    assert result["success"] and result["response"]["message"] == "flushed"
    assert len(recorded(env["record"], "flush_cache")) == 1
    loads = requests.get(node.url + "/get_loads", timeout=10).json()["workers"]
    load = next(w for w in loads if w["worker_id"] == worker_id)["load"]
    assert load["loads"][0]["num_running_reqs"] == BASE_LOAD


def test_a_registered_tokenizer_serves_a_worker_of_its_model(env: dict[str, Any]) -> None:
    node, cluster = env["node"], env["c"]
    record = cluster.tmp_path / "registered.jsonl"
    worker = cluster.grpc_echo(env["tok"], "--record-file", str(record), model="reg-model")
    body = {"name": "reg-model", "source": str(env["tok"])}
    resp = requests.post(node.url + "/v1/tokenizers", json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    status = f"{node.url}/v1/tokenizers/{resp.json()['id']}/status"
    # Discovery takes a registered tokenizer that is loaded on the node by then (else the
    # worker's own): under load the registration may still be pending, so wait for it.
    wait_for(
        lambda: requests.get(status, timeout=5).json()["status"] == "ready",
        timeout=30,
        what="the registered tokenizer ready",
    )
    worker_id = _add(node, {"url": worker.url})
    shown = _settled(node, worker_id)
    assert shown["status"] == "ready", shown["job_status"]
    assert shown["metadata"]["tokenizer"] == {"source": "registry", "name": "reg-model"}
    assert shown["tokenizer_loaded"] is True
    assert recorded(record, "get_tokenizer") == []


def test_a_local_tokenizer_path(env: dict[str, Any]) -> None:
    node, cluster = env["node"], env["c"]
    worker: GrpcEchoWorker = cluster.grpc_echo(env["tok"], model="path-model")
    env["path_worker"] = worker
    good = _add(node, {"url": worker.url, "tokenizer_path": str(env["tok"])})
    shown = _settled(node, good)
    assert shown["status"] == "ready", shown["job_status"]
    assert shown["metadata"]["tokenizer"] == {"source": "tokenizer_path", "name": str(env["tok"])}


def test_unreachable_or_without_a_tokenizer_fails_in_time_with_the_reason(
    env: dict[str, Any],
) -> None:
    node = env["node"]
    worker = env.get("path_worker") or pytest.skip("needs the path-model worker")
    started = time.monotonic()
    unreachable = _add(node, {"url": f"grpc://127.0.0.1:{free_port()}"})
    missing = str(env["tok"] / "nowhere")
    other_url = worker.url.replace("127.0.0.1", "localhost")  # the same worker, another URL
    bad_path = _add(node, {"url": other_url, "tokenizer_path": missing})
    mute = env["c"].grpc_echo(env["tok"], "--no-get-tokenizer", model="unknown-model")
    no_tokenizer = _add(node, {"url": mute.url})
    gone, bad, none = (_settled(node, w) for w in (unreachable, bad_path, no_tokenizer))
    assert time.monotonic() - started < STARTUP_SECS + 5
    assert gone["status"] == bad["status"] == none["status"] == "failed"
    assert "GetModelInfo did not answer" in gone["job_status"]["message"]
    reason = f"tokenizer_path {missing!r} names no registered tokenizer"
    assert reason in bad["job_status"]["message"]
    assert (
        "no tokenizer for this gRPC worker: it has no tokenizer_path, no tokenizer is "
        "registered as 'unknown-model', and its own could not be used (GetTokenizer "
        "answered UNIMPLEMENTED)"
    ) in none["job_status"]["message"]


def test_a_killed_grpc_worker_turns_unhealthy(env: dict[str, Any]) -> None:
    node, keyed = env["node"], env["keyed"]
    worker_id = env.get("keyed_id") or pytest.skip("needs the keyed worker")
    keyed.proc.kill()

    def unhealthy() -> dict[str, Any] | None:
        health = _worker(node, worker_id)["health"]
        return health if not health["healthy"] else None

    health = wait_for(unhealthy, timeout=10, what="the killed worker unhealthy")
    assert "HealthCheck did not answer" in health["last_error"]


def test_a_removed_workers_tokenizer_zip_is_deleted(env: dict[str, Any]) -> None:
    node = env["node"]
    own = build_tokenizer_dir(env["c"].tmp_path / "own-tok", style="qwen25")
    worker = env["c"].grpc_echo(own, model="own-model")
    worker_id = _add(node, {"url": worker.url})
    shown = _settled(node, worker_id)
    assert shown["status"] == "ready", shown["job_status"]
    digest = shown["metadata"]["tokenizer"]["sha256"]
    blob = node.data_dir / "blobs" / "sha256" / digest
    unpacked = node.data_dir / "grpc-tokenizers" / digest
    assert blob.is_file() and unpacked.is_dir()
    assert requests.delete(f"{node.url}/workers/{worker_id}", timeout=5).status_code == 200
    wait_for(lambda: not blob.exists() and not unpacked.exists(), what="the zip deleted")
