"""Idempotency-Key and GET /ha/requests/{id} on one real node (issue 8).

A write sent with an Idempotency-Key is applied at most once and a retry is answered
from the first attempt; keys are per caller, method and path; every committing route's
error says what became of its command (`outcome`, `request_id`), in each error shape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from node.idempotency import derive
from tests.integration.conftest import Cluster
from tests.support import strong, wait_for

ADMIN_A = strong("admin-a-key")
ADMIN_B = strong("admin-b-key")
A = {"Authorization": f"Bearer {ADMIN_A}"}
B = {"Authorization": f"Bearer {ADMIN_B}"}


@pytest.fixture(scope="module")
def url(module_cluster: Cluster) -> Iterator[str]:
    node = module_cluster.node(
        "--control-plane-api-keys",
        f"a:ops:admin:{ADMIN_A}",
        f"b:ops:admin:{ADMIN_B}",
        ready=False,  # no workers: the data plane is not ready, the control plane is
    )
    wait_for(
        lambda: requests.get(f"{node.url}/ha/health", headers=A, timeout=2).ok,
        what="a leader",
    )
    yield node.url


def config(url: str, key: str) -> dict:  # type: ignore[type-arg]
    return requests.get(f"{url}/ha/config/{key}", headers=A, timeout=5).json()  # type: ignore[no-any-return]


def test_a_retry_with_the_same_key_is_applied_once_and_answered_as_the_first(url: str) -> None:
    body = {"key": "idem/once", "value": 1}
    first = requests.post(
        f"{url}/ha/config", json=body, headers={**A, "Idempotency-Key": "k-1"}, timeout=10
    )
    assert first.status_code == 200, first.text
    rid = derive("a", "POST", "/ha/config", "k-1")
    assert first.headers["Meshgate-Request-Id"] == rid
    assert "Idempotent-Replayed" not in first.headers
    version = first.json()["version"]
    # Meanwhile someone else changes the key: the retry must not write 1 over it.
    assert requests.post(f"{url}/ha/config", json={**body, "value": 2}, headers=A).ok
    again = requests.post(
        f"{url}/ha/config", json=body, headers={**A, "Idempotency-Key": "k-1"}, timeout=10
    )
    assert again.status_code == 200 and again.json()["version"] == version
    assert again.headers["Idempotent-Replayed"] == "true"
    assert config(url, "idem/once")["value"] == 2

    known = requests.get(f"{url}/ha/requests/{rid}", headers=A, timeout=5).json()
    assert known["status"] == "applied" and known["ok"] is True
    assert known["outcome"] == {"ok": True, "value": {"key": "idem/once", "version": version}}
    assert known["index"] == version


def test_keys_are_per_caller_and_per_route(url: str) -> None:
    body = {"key": "idem/callers", "value": "x"}
    headers = {"Idempotency-Key": "shared"}
    by_a = requests.post(f"{url}/ha/config", json=body, headers={**A, **headers}, timeout=10)
    by_b = requests.post(f"{url}/ha/config", json=body, headers={**B, **headers}, timeout=10)
    assert by_a.ok and by_b.ok and by_b.json()["version"] > by_a.json()["version"]
    assert "Idempotent-Replayed" not in by_b.headers
    deleted = requests.delete(f"{url}/ha/config/idem/callers", headers={**A, **headers}, timeout=10)
    assert deleted.ok and "Idempotent-Replayed" not in deleted.headers


@pytest.mark.parametrize("key", ["", "x" * 129, "caf\u00e9", "tab\there"])
def test_a_bad_key_is_refused_before_anything_is_committed(url: str, key: str) -> None:
    before = requests.get(f"{url}/ha/status", headers=A, timeout=5).json()["applied_index"]
    response = requests.post(
        f"{url}/ha/config",
        json={"key": "idem/bad", "value": 1},
        headers={**A, "Idempotency-Key": key.encode("utf-8").decode("latin-1")},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "Idempotency-Key"
    assert requests.get(f"{url}/ha/config/idem/bad", headers=A, timeout=5).status_code == 404
    after = requests.get(f"{url}/ha/status", headers=A, timeout=5).json()["applied_index"]
    assert after - before <= 1  # at most a usage flush, never the write


def test_a_refused_write_says_it_was_applied_as_a_refusal(url: str) -> None:
    body = {"key": "idem/cas", "value": 1, "expected_version": 99}
    refused = requests.post(f"{url}/ha/config", json=body, headers=A, timeout=10)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["outcome"] == "rejected" and error["request_id"]
    assert refused.headers["Meshgate-Request-Id"] == error["request_id"]
    known = requests.get(f"{url}/ha/requests/{error['request_id']}", headers=A, timeout=5)
    assert known.json()["status"] == "applied" and known.json()["ok"] is False


def test_a_retried_worker_add_names_the_first_worker(url: str) -> None:
    body = {"url": "http://127.0.0.1:9/idem"}
    headers = {**A, "Idempotency-Key": "add-worker"}
    first = requests.post(f"{url}/workers", json=body, headers=headers, timeout=10)
    again = requests.post(f"{url}/workers", json=body, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["worker_id"] == first.json()["worker_id"]
    assert again.headers["Location"] == first.headers["Location"]
    workers = requests.get(f"{url}/workers", headers=A, timeout=5).json()["workers"]
    assert [w["url"] for w in workers].count(body["url"]) == 1
    # Without a key, a second add of the URL is the conflict it always was.
    plain = requests.post(f"{url}/workers", json=body, headers=A, timeout=10)
    assert plain.status_code == 409


def test_a_replay_never_shows_a_secret_that_does_not_work(url: str) -> None:
    assert requests.post(
        f"{url}/api/admin/tenants", json={"name": "idem"}, headers=A, timeout=10
    ).ok
    headers = {**A, "Idempotency-Key": "mint-1"}
    body = {"name": "ci", "namespace": "idem"}
    first = requests.post(f"{url}/api/keys", json=body, headers=headers, timeout=10)
    assert first.status_code == 201 and first.json()["apiKey"]
    again = requests.post(f"{url}/api/keys", json=body, headers=headers, timeout=10)
    assert again.status_code == 409
    answer = again.json()  # the management API's error shape, with the outcome fields
    assert answer["code"] == "IDEMPOTENCY_KEY_REUSED" and "apiKey" not in answer
    assert answer["outcome"] == "applied" and answer["value"]["id"] == first.json()["id"]
    keys = requests.get(f"{url}/api/keys?namespace=idem", headers=A, timeout=5).json()
    assert len([k for k in keys["keys"] if k["name"] == "ci"]) == 1
    # A rejected management write carries the fields at the top level.
    dup = requests.post(f"{url}/api/admin/tenants", json={"name": "idem"}, headers=A, timeout=10)
    assert dup.status_code == 409
    assert dup.json()["outcome"] == "rejected" and dup.json()["request_id"]


def test_an_unknown_request_id_is_settled_by_its_expiry(url: str) -> None:
    rid = "0" * 32
    log_time = requests.get(f"{url}/ha/requests/{rid}", headers=A, timeout=5).json()["log_time"]
    assert log_time and abs(log_time - time.time()) < 300
    plain = requests.get(f"{url}/ha/requests/{rid}", headers=A, timeout=5).json()
    assert plain["status"] == "unknown" and plain["can_still_apply"] is None
    assert plain["remembered_since"] == {"index": 0, "log_time": None}
    later = time.time() + 60
    pending = requests.get(
        f"{url}/ha/requests/{rid}", params={"expires_at": later}, headers=A, timeout=5
    ).json()
    assert pending["status"] == "unknown" and pending["can_still_apply"] is True
    past = requests.get(
        f"{url}/ha/requests/{rid}",
        params=[("expires_at", log_time - 10), ("expires_at", log_time - 5)],
        headers=A,
        timeout=5,
    ).json()
    assert past["status"] == "not_applied" and past["can_still_apply"] is False
    for wrong in ("soon", "\u0661\u0667", "\uff11\uff17", " 17", "1_7", "inf"):  # not ASCII digits
        bad = requests.get(
            f"{url}/ha/requests/{rid}", params={"expires_at": wrong}, headers=A, timeout=5
        )
        assert bad.status_code == 400, wrong
