"""Bad input on every control-plane route (and the inference routes): a clear 4xx, no change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Cluster

MODEL = "echo-model"


@pytest.fixture(scope="module")
def node(module_cluster: Cluster) -> Iterator[tuple[str, str]]:
    _, worker = module_cluster.echo(model=MODEL)
    node = module_cluster.node("--worker-urls", worker, "--max-payload-size", "4096")
    worker_id = requests.get(node.url + "/workers", timeout=5).json()["workers"][0]["id"]
    yield node.url, worker_id


def _state(url: str) -> tuple[object, object]:
    workers = requests.get(url + "/workers", timeout=5).json()
    policies = requests.get(url + "/policies", timeout=5).json()["policies"]
    return ([(w["id"], w["version"]) for w in workers["workers"]], policies)


def _raw(url: str, method: str, path: str, data: bytes) -> requests.Response:
    return requests.request(
        method, url + path, data=data, timeout=10, headers={"Content-Type": "application/json"}
    )


BAD_WORKER_BODIES = [
    b"",
    b"{not json",
    b"[1, 2]",
    b'"text"',
    b"null",
    b"{}",
    b'{"url": 5}',
    b'{"url": ""}',
    b'{"url": "ftp://host:1"}',
    b'{"url": "http://"}',
    b'{"url": "http://h:99999"}',
    b'{"url": "http://h:1/?q=1"}',
    b'{"url": "http://h:1", "priority": -1}',
    b'{"url": "http://h:1", "priority": "high"}',
    b'{"url": "http://h:1", "priority": true}',
    b'{"url": "http://h:1", "cost": -0.5}',
    b'{"url": "http://h:1", "cost": "cheap"}',
    b'{"url": "http://h:1", "worker_type": "gpu"}',
    b'{"url": "http://h:1", "labels": ["a"]}',
    b'{"url": "http://h:1", "labels": {"a": 1}}',
    b'{"url": "http://h:1", "model_id": 3}',
    b'{"url": "http://h:1", "api_key": ""}',
    b'{"url": "http://h:1", "api_key": "k\\r\\nX-Injected: 1"}',
    b'{"url": "http://h:1", "api_key": "k\\u0000y"}',
    b'{"url": "http://h:1", "colour": "red"}',
    b'{"url": "http://h:1", "connection_mode": "grpc"}',
    b'{"url": "http://h:1", "worker_type": "prefill", "bootstrap_port": 0}',
    b'{"url": "http://h:1", "worker_type": "prefill", "bootstrap_port": 70000}',
    b'{"url": "http://h:1", "worker_type": "prefill", "bootstrap_port": "8998"}',
]


@pytest.mark.parametrize("body", BAD_WORKER_BODIES)
def test_post_workers_rejects(node: tuple[str, str], body: bytes) -> None:
    url, _ = node
    before = _state(url)
    resp = _raw(url, "POST", "/workers", body)
    assert resp.status_code == 400, (body, resp.text)
    error = resp.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    assert _state(url) == before


BAD_UPDATES = [
    b"",
    b"{broken",
    b"[]",
    b"{}",
    b'{"priority": -3}',
    b'{"cost": "x"}',
    b'{"url": "http://elsewhere:1"}',
    b'{"unknown": 1}',
    b'{"worker_type": "x"}',
    b'{"labels": "zone=a"}',
    b'{"bootstrap_port": 1.5}',
    b'{"api_key": "k\\ny"}',
    b'{"priority": 1, "expected_version": -1}',
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("body", BAD_UPDATES)
def test_update_worker_rejects(node: tuple[str, str], method: str, body: bytes) -> None:
    url, worker_id = node
    before = _state(url)
    resp = _raw(url, method, f"/workers/{worker_id}", body)
    assert resp.status_code == 400, (body, resp.text)
    assert resp.json()["error"]["message"]
    assert _state(url) == before


BAD_POLICIES = [
    b"",
    b"nope",
    b"[]",
    b"{}",
    b'{"policy": 1}',
    b'{"policy": "teleport"}',
    b'{"policy": "round_robin", "params": []}',
    b'{"policy": "random", "params": {"seed": "x"}}',
    b'{"policy": "cache_aware", "params": {"cache_threshold": 1.5}}',
    b'{"policy": "consistent_hashing", "params": {"virtual_nodes": 0}}',
    b'{"policy": "round_robin", "extra": true}',
    b'{"policy": "round_robin", "expected_version": "one"}',
]


@pytest.mark.parametrize("body", BAD_POLICIES)
def test_put_policy_rejects(node: tuple[str, str], body: bytes) -> None:
    url, _ = node
    before = _state(url)
    resp = _raw(url, "PUT", f"/policies/{MODEL}", body)
    assert resp.status_code == 400, (body, resp.text)
    assert resp.json()["error"]["message"]
    assert _state(url) == before


def test_delete_and_get_of_missing_objects(node: tuple[str, str]) -> None:
    url, _ = node
    assert requests.delete(url + "/policies/absent", timeout=5).status_code == 404
    assert requests.get(url + "/policies/absent", timeout=5).status_code == 404
    assert requests.delete(url + "/workers/123", timeout=5).status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/wasm"), ("POST", "/wasm"), ("PATCH", f"/wasm/{'1' * 32}"), ("DELETE", "/wasm/x")],
)
def test_wasm_routes_are_404_naming_the_flag_without_it(
    node: tuple[str, str], method: str, path: str
) -> None:
    url, _ = node
    body = {"modules": [{"name": "m", "file_path": "/etc/passwd", "attach_points": []}]}
    resp = requests.request(method, url + path, json=body, timeout=5)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "WASM_DISABLED"
    assert "--enable-wasm" in resp.json()["error"]["message"]


def test_wrong_method_and_unknown_route_are_json(node: tuple[str, str]) -> None:
    url, _ = node
    wrong = requests.get(url + "/flush_cache", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["error"]["message"]
    unknown = requests.get(url + "/nowhere", timeout=5)
    assert unknown.status_code == 404 and "/nowhere" in unknown.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/workers", "/v1/chat/completions", "/policies/x"])
def test_oversized_bodies_get_413(node: tuple[str, str], path: str) -> None:
    url, _ = node
    before = _state(url)
    method = "PUT" if path.startswith("/policies") else "POST"
    resp = _raw(url, method, path, b'{"url": "' + b"a" * 8000 + b'"}')
    assert resp.status_code == 413
    assert "--max-payload-size" in resp.json()["error"]["message"]
    assert _state(url) == before


@pytest.mark.parametrize(
    "body,param",
    [
        (b"", None),
        (b"{oops", None),
        (b"[1]", None),
        (b'{"model": 7, "messages": []}', "model"),
        (b'{"model": "echo-model", "stream": "yes", "messages": []}', "stream"),
    ],
)
def test_inference_routes_reject_malformed_bodies(
    node: tuple[str, str], body: bytes, param: str | None
) -> None:
    url, _ = node
    resp = _raw(url, "POST", "/v1/chat/completions", body)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == param


def test_a_refusal_does_not_echo_the_value_sent(node: tuple[str, str]) -> None:
    """An enum value or a field name the client sent is not repeated back whole: the
    error says what a valid value is instead."""
    url, _ = node
    payload = "<img src=x onerror=alert(1)>" * 20
    for body in (
        {"url": "http://h:1", "worker_type": payload},
        {"url": "http://h:1", "x" * 500: 1},
    ):
        before = _state(url)
        resp = requests.post(url + "/workers", json=body, timeout=10)
        assert resp.status_code == 400, resp.text
        message = resp.json()["error"]["message"]
        assert payload not in resp.text and "x" * 100 not in resp.text, message
        assert len(message) < 400
        assert _state(url) == before
    worker_type = requests.post(
        url + "/workers", json={"url": "http://h:1", "worker_type": payload}, timeout=10
    ).json()["error"]["message"]
    assert worker_type.startswith("worker_type: invalid enum value"), worker_type


def test_client_header_bytes_that_are_not_utf8_reach_the_worker(node: tuple[str, str]) -> None:
    """aiohttp's server keeps such bytes as surrogates; the forwarder's client sends them
    on as they came (encoding them as UTF-8 was a 500)."""
    url, _ = node
    chat = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({"Accept": b"\xff\xfe"}, {"X-Request-Id": b"r\xff"}):
        resp = requests.post(url + "/v1/chat/completions", json=chat, headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
