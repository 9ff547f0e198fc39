"""Auth on every route group: public, protected (API key) and control-plane (admin role)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import Proc, free_port, strong

API_KEY = strong("sk-data-plane")
ADMIN = strong("admin-secret-key")
VIEWER = strong("viewer-secret-key")
MODEL = "echo-model"

PUBLIC = [
    ("get", "/health"),
    ("get", "/liveness"),
    ("get", "/readiness"),
    ("get", "/health_generate"),
    ("get", "/v1/models"),
    ("get", "/get_model_info"),
    ("get", "/get_server_info"),
    ("get", "/engine_metrics"),
    ("get", "/metrics"),
]
PROTECTED = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/rerank",
    "/rerank",
    "/generate",
    "/v1/messages",
    "/v1/classify",
    "/v1/responses",
]
CONTROL = [
    ("get", "/workers"),
    ("post", "/workers"),
    ("get", "/workers/{id}"),
    ("put", "/workers/{id}"),
    ("patch", "/workers/{id}"),
    ("delete", "/workers/{id}"),
    ("get", "/policies"),
    ("get", f"/policies/{MODEL}"),
    ("put", f"/policies/{MODEL}"),
    ("delete", f"/policies/{MODEL}"),
    ("post", "/flush_cache"),
    ("get", "/get_loads"),
]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def secured(module_cluster: Cluster) -> Iterator[tuple[str, str]]:
    _, worker = module_cluster.echo(model=MODEL)
    node = module_cluster.node(
        "--worker-urls",
        worker,
        "--api-key",
        API_KEY,
        "--control-plane-api-keys",
        f"k1:ops:admin:{ADMIN}",
        f"k2:dashboards:user:{VIEWER}",
    )
    worker_id = requests.get(node.url + "/workers", headers=_bearer(ADMIN), timeout=5).json()[
        "workers"
    ][0]["id"]
    yield node.url, worker_id


def test_public_routes_need_no_credentials(secured: tuple[str, str]) -> None:
    url, _ = secured
    for method, path in PUBLIC:
        assert requests.request(method, url + path, timeout=10).status_code == 200, path


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_routes(secured: tuple[str, str], path: str) -> None:
    url, _ = secured
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "prompt": "x",
        "input": "x",
        "text": "x",
        "query": "x",
        "documents": ["x"],
        "max_tokens": 2,
    }
    for headers in ({}, _bearer("wrong"), {"Authorization": "Basic abc"}):
        resp = requests.post(url + path, json=body, headers=headers, timeout=10)
        assert resp.status_code == 401, (path, headers)
        assert resp.json()["error"]["type"] == "authentication_error"
        assert "Bearer" in resp.headers["WWW-Authenticate"]
    for headers in (_bearer(API_KEY), {"X-API-Key": API_KEY}, _bearer(ADMIN), _bearer(VIEWER)):
        assert requests.post(url + path, json=body, headers=headers, timeout=10).status_code == 200


@pytest.mark.parametrize(("method", "path"), CONTROL)
def test_control_plane_routes_need_an_admin_key(
    secured: tuple[str, str], method: str, path: str
) -> None:
    url, _worker_id = secured
    target = url + path.replace("{id}", str(uuid.uuid4()))
    for headers, status in (
        ({}, 401),
        (_bearer("wrong"), 401),
        (_bearer(API_KEY), 401),
        (_bearer(VIEWER), 403),
    ):
        resp = requests.request(method, target, json={}, headers=headers, timeout=10)
        assert resp.status_code == status, (method, path, headers)
        assert resp.json()["error"]["message"]
    admitted = requests.request(method, target, json={}, headers=_bearer(ADMIN), timeout=10)
    assert admitted.status_code not in (401, 403), (method, path)


def test_only_api_key_guards_the_control_plane_too(cluster: Cluster) -> None:
    node = cluster.node("--api-key", API_KEY, ready=False)
    assert requests.get(node.url + "/workers", timeout=5).status_code == 401
    assert (
        requests.get(node.url + "/workers", headers=_bearer(API_KEY), timeout=5).status_code == 200
    )


def test_no_auth_on_a_public_address_refuses_to_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = Proc(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        tmp_path / "refused.log",
    )
    assert proc.wait_exit(15) == 2
    log = proc.log()
    assert "--host" in log and "authentication" in log
    assert len(log.strip().splitlines()) == 1
