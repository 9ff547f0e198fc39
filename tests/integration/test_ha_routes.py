"""The /ha routes on one node: admin-only, and bad input refused without a change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import strong, wait_for

ADMIN = strong("admin-key")
USER = strong("user-key")
API_KEY = strong("client-key")
HA_ROUTES = [
    ("get", "/ha/status"),
    ("get", "/ha/health"),
    ("get", "/ha/workers"),
    ("get", "/ha/workers/00000000-0000-0000-0000-000000000000"),
    ("get", "/ha/policies"),
    ("get", "/ha/policies/m"),
    ("get", "/ha/config"),
    ("get", "/ha/config/k"),
    ("post", "/ha/config"),
    ("delete", "/ha/config/k"),
    ("get", "/ha/rate-limit"),
    ("post", "/ha/rate-limit"),
    ("get", "/ha/rate-limit/stats"),
    ("delete", "/ha/rate-limit/m"),
    ("post", "/ha/shutdown"),
    ("post", "/ha/drain"),
    ("post", "/ha/members"),
    ("delete", "/ha/members/x"),
    ("get", "/ha/requests/x"),
    ("get", "/ha/local"),
]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def node(module_cluster: Cluster) -> Iterator[str]:
    n = module_cluster.node(
        "--api-key",
        API_KEY,
        "--control-plane-api-keys",
        f"a:ops:admin:{ADMIN}",
        f"u:viewer:user:{USER}",
        ready=False,
    )
    yield n.url


@pytest.mark.parametrize(("method", "path"), HA_ROUTES)
def test_every_ha_route_needs_an_admin(node: str, method: str, path: str) -> None:
    for headers, status in (
        ({}, 401),
        (_auth("bogus"), 401),
        (_auth(API_KEY), 401),
        (_auth(USER), 403),
        ({"X-Meshgate-Mesh-Token": "forged"}, 401),
        ({"X-Meshgate-Mesh-Token": "\xff" * 64}, 401),  # not UTF-8 (was a 500 and a traceback)
    ):
        resp = requests.request(method, node + path, json={}, headers=headers, timeout=5)
        assert resp.status_code == status, (method, path, headers, resp.text)
        assert resp.json()["error"]["message"]
    assert requests.get(node + "/ha/config", timeout=5, headers=_auth(ADMIN)).json()["config"] == []


def _post(node: str, path: str, body: object) -> requests.Response:
    return requests.post(node + path, json=body, headers=_auth(ADMIN), timeout=5)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"key": ""},
        {"key": "a b", "value": 1},
        {"key": "k"},
        {"key": 5, "value": 1},
        {"key": "k", "value": 1, "expected_version": -1},
        {"key": "k", "value": 1, "extra": 1},
        {"key": "k", "value": "x" * 70000},
    ],
)
def test_bad_config_writes(node: str, body: object) -> None:
    resp = _post(node, "/ha/config", body)
    too_large = isinstance(body, dict) and len(str(body.get("value"))) > 65536
    assert resp.status_code == (413 if too_large else 400), resp.text
    assert requests.get(node + "/ha/config", headers=_auth(ADMIN), timeout=5).json()["config"] == []


def test_config_round_trip_with_versions(node: str) -> None:
    first = _post(
        node, "/ha/config", {"key": "router/timeout", "value": {"secs": 5}, "expected_version": 0}
    )
    assert first.status_code == 200
    version = first.json()["version"]
    got = requests.get(node + "/ha/config/router/timeout", headers=_auth(ADMIN), timeout=5).json()
    assert got == {
        "key": "router/timeout",
        "value": {"secs": 5},
        "version": version,
        "updated_at": got["updated_at"],
        "updated_by": "node-1/a",
    }
    assert (
        _post(
            node, "/ha/config", {"key": "router/timeout", "value": 1, "expected_version": 0}
        ).status_code
        == 409
    )
    wrong = requests.delete(
        f"{node}/ha/config/router/timeout?expected_version=1", headers=_auth(ADMIN), timeout=5
    )
    assert wrong.status_code == 409
    gone = requests.delete(
        f"{node}/ha/config/router/timeout?expected_version={version}",
        headers=_auth(ADMIN),
        timeout=5,
    )
    assert gone.status_code == 200
    assert (
        requests.get(
            node + "/ha/config/router/timeout", headers=_auth(ADMIN), timeout=5
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"requests_per_second": 0},
        {"requests_per_second": -1},
        {"requests_per_second": "x"},
        {"requests_per_second": 5, "burst": 0.5},
        {"requests_per_second": 5, "model": 3},
        {"requests_per_second": 5, "colour": "red"},
        {"requests_per_second": True},
    ],
)
def test_bad_rate_limit_rules(node: str, body: dict) -> None:
    resp = _post(node, "/ha/rate-limit", body)
    assert resp.status_code == 400 and resp.json()["error"]["message"]
    assert (
        requests.get(node + "/ha/rate-limit", headers=_auth(ADMIN), timeout=5).json()["rules"] == []
    )


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/ha/shutdown", {"target": "ghost"}, 404),
        ("/ha/shutdown", {"target": 1}, 400),
        ("/ha/shutdown", {"grace_period_secs": "long"}, 400),
        ("/ha/shutdown", {"drain_delay_secs": -5}, 400),
        ("/ha/shutdown", {"when": "now"}, 400),
        ("/ha/drain", {"target": "ghost"}, 404),
        ("/ha/drain", {"draining": "yes"}, 400),
        ("/ha/members", {"raft_address": "no-port"}, 400),
        ("/ha/members", {}, 400),
        ("/ha/members", [], 400),
    ],
)
def test_bad_operator_requests(node: str, path: str, body: object, status: int) -> None:
    resp = _post(node, path, body)
    assert resp.status_code == status, resp.text
    assert requests.get(node + "/liveness", timeout=5).status_code == 200  # still running
    assert (
        requests.get(node + "/ha/status", headers=_auth(ADMIN), timeout=5).json()["shutdowns"] == []
    )


def test_the_control_loop_says_what_it_did_last(node: str) -> None:
    def report() -> dict[str, object]:
        local = requests.get(node + "/ha/local", headers=_auth(ADMIN), timeout=5).json()
        return local["control_loop"]

    # A guarded node announces itself, records that the mesh requires credentials, and
    # then has nothing left to do.
    wait_for(lambda: str(report()["last"]).startswith("steady: leader"), what="a steady loop")
    loop = report()
    assert loop["last"] == "steady: leader, 0 worker(s) in the mesh"
    assert isinstance(loop["cycles"], int) and loop["cycles"] >= 3
    assert isinstance(loop["since"], float)
