"""The management API on one node: login, tenants, keys, models, publishing, isolation."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import ROOT, strong

SECRET = strong("manage-jwt")
PASSWORD = "correct horse battery staple"
MODEL = "llama"


def _hash(password: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "hash-password", "--username", "admin"],
        input=password,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def api(module_cluster: Cluster) -> Iterator[str]:
    _, worker = module_cluster.echo(model=MODEL)
    node = module_cluster.node(
        "--worker-urls",
        worker,
        "--jwt-secret",
        SECRET,
        "--admin-credentials",
        _hash(PASSWORD),
        # These tests call fast with tenant keys; the per-user limit has a test of its own.
        "--management-burst",
        "0",
    )
    yield node.url


def _login(api: str) -> dict[str, str]:
    resp = requests.post(
        api + "/api/admin/login", json={"username": "admin", "password": PASSWORD}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"]["isAdmin"] is True and body["user"]["issuer"] == "meshgate"
    return {"Authorization": f"Bearer {body['token']}"}


def test_login_rejects_wrong_credentials(api: str) -> None:
    for body in (
        {"username": "admin", "password": "nope"},
        {"username": "root", "password": PASSWORD},
    ):
        resp = requests.post(api + "/api/admin/login", json=body, timeout=10)
        assert resp.status_code == 401
        assert resp.json()["error"].startswith("Authentication required")  # seed 002 shape
    assert (
        requests.post(api + "/api/admin/login", json={"username": 1}, timeout=5).status_code == 400
    )


def test_tenants_keys_and_isolation(api: str) -> None:
    admin = _login(api)
    for name in ("team-a", "team-b"):
        resp = requests.post(
            api + "/api/admin/tenants", json={"name": name}, headers=admin, timeout=5
        )
        assert resp.status_code == 201, resp.text
    assert (
        requests.post(
            api + "/api/admin/tenants", json={"name": "team-a"}, headers=admin, timeout=5
        ).status_code
        == 409
    )
    assert (
        requests.post(
            api + "/api/admin/tenants", json={"name": "Bad Name"}, headers=admin, timeout=5
        ).status_code
        == 400
    )
    names = [
        t["name"]
        for t in requests.get(api + "/api/admin/tenants", headers=admin, timeout=5).json()[
            "tenants"
        ]
    ]
    assert names == ["team-a", "team-b"]

    made = requests.post(
        api + "/api/keys", json={"name": "ci", "namespace": "team-a"}, headers=admin, timeout=5
    )
    assert made.status_code == 201
    key_a = made.json()["apiKey"]
    key_b = requests.post(
        api + "/api/keys", json={"name": "ci", "namespace": "team-b"}, headers=admin, timeout=5
    ).json()["apiKey"]
    as_a = {"Authorization": f"Bearer {key_a}"}
    as_b = {"X-API-Key": key_b}
    # the key works on the inference API and is shown only once
    chat = requests.post(
        api + "/v1/chat/completions",
        headers=as_a,
        timeout=10,
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200
    listed = requests.get(api + "/api/keys", headers=as_a, timeout=5).json()["keys"]
    assert [k["tenant"] for k in listed] == ["team-a"] and key_a not in str(listed)

    # tenant isolation: a user of team-a cannot touch team-b
    assert (
        requests.get(api + "/api/keys?namespace=team-b", headers=as_a, timeout=5).status_code == 403
    )
    b_key_id = requests.get(api + "/api/keys", headers=as_b, timeout=5).json()["keys"][0]["id"]
    for method, path in (
        ("get", f"/api/keys/{b_key_id}"),
        ("delete", f"/api/keys/{b_key_id}"),
        ("post", f"/api/keys/{b_key_id}/rotate"),
    ):
        assert requests.request(method, api + path, headers=as_a, timeout=5).status_code == 403
    assert (
        requests.post(
            api + "/api/models", headers=as_a, timeout=5, json={"name": "m", "namespace": "team-b"}
        ).status_code
        == 403
    )
    assert requests.get(api + "/api/admin/tenants", headers=as_a, timeout=5).status_code == 403
    assert requests.get(api + "/api/admin/system", headers=as_a, timeout=5).status_code == 403
    assert requests.get(api + "/workers", headers=as_a, timeout=5).status_code == 403
    assert (
        requests.post(
            api + "/api/keys", headers=as_a, timeout=5, json={"role": "admin"}
        ).status_code
        == 403
    )

    # revoke: the key stops working at once
    key_a_id = listed[0]["id"]
    assert requests.delete(f"{api}/api/keys/{key_a_id}", headers=as_a, timeout=5).status_code == 200
    assert (
        requests.post(
            api + "/v1/chat/completions",
            headers=as_a,
            timeout=10,
            json={"model": MODEL, "messages": []},
        ).status_code
        == 401
    )


def _tenant_with_minter(api: str, admin: dict[str, str], tenant: str) -> str:
    """Create `tenant` and a minter key of it; the key."""
    requests.post(api + "/api/admin/tenants", json={"name": tenant}, headers=admin, timeout=5)
    return str(
        requests.post(
            api + "/api/keys",
            json={"namespace": tenant, "role": "minter"},
            headers=admin,
            timeout=5,
        ).json()["apiKey"]
    )


def test_models_publishing_rotation_and_usage(api: str) -> None:
    admin = _login(api)
    user = _tenant_with_minter(api, admin, "shop")
    as_user = {"Authorization": f"Bearer {user}"}
    created = requests.post(
        api + "/api/models",
        headers=as_user,
        timeout=5,
        json={"name": "assistant", "modelId": MODEL, "minReplicas": 1, "maxReplicas": 2},
    )
    assert created.status_code == 201, created.text
    assert (
        requests.post(
            api + "/api/models", headers=as_user, timeout=5, json={"name": "assistant"}
        ).status_code
        == 409
    )
    got = requests.get(api + "/api/models/assistant", headers=as_user, timeout=5).json()
    assert got["ready"] is True and got["statusDetails"]["replicas"]["ready"] == 1
    updated = requests.put(
        api + "/api/models/assistant",
        headers=as_user,
        timeout=5,
        json={"maxReplicas": 4, "policy": "least_load"},
    )
    assert updated.status_code == 200 and updated.json()["scaling"]["maxReplicas"] == 4
    predicted = requests.post(
        api + "/api/models/assistant/predict",
        headers=as_user,
        timeout=10,
        json={"inputData": {"messages": [{"role": "user", "content": "x"}]}},
    )
    assert predicted.status_code == 200 and predicted.json()["choices"]

    published = requests.post(
        api + "/api/models/assistant/publish",
        headers=as_user,
        timeout=5,
        json={"config": {"rateLimiting": {"requestsPerMinute": 4}}},
    )
    assert published.status_code == 201, published.text
    view = published.json()["publishedModel"]
    key = view["apiKey"]
    assert key.startswith("pk_live_") and view["documentation"]["exampleRequests"]
    assert view["externalUrl"].endswith("/models/assistant")
    again = requests.get(api + "/api/models/assistant/publish", headers=as_user, timeout=5).json()
    assert key not in str(again)  # shown in full exactly once
    assert (
        requests.post(
            api + "/api/models/assistant/publish", headers=as_user, timeout=5, json={"config": {}}
        ).status_code
        == 409
    )
    assert (
        requests.delete(api + "/api/models/assistant", headers=as_user, timeout=5).status_code
        == 409
    )  # published: unpublish first

    remaining = []
    for _ in range(5):
        resp = requests.post(
            api + "/models/assistant/predict",
            headers={"X-API-Key": key},
            timeout=10,
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
        remaining.append((resp.status_code, resp.headers.get("X-RateLimit-Remaining")))
    assert remaining[:4] == [(200, "3"), (200, "2"), (200, "1"), (200, "0")]
    assert remaining[4][0] == 429

    valid = requests.post(
        api + "/api/validate-api-key", headers=as_user, timeout=5, json={"apiKey": key}
    ).json()
    assert valid == {"valid": True, "tenant": "shop", "model": "assistant", "keyId": view["keyId"]}
    rotated = requests.post(
        api + "/api/models/assistant/publish/rotate-key", headers=as_user, timeout=5
    ).json()["newApiKey"]
    old = requests.post(
        api + "/models/assistant/predict",
        headers={"X-API-Key": key},
        timeout=10,
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert old.status_code == 401
    assert requests.post(
        api + "/api/validate-api-key", headers=as_user, timeout=5, json={"apiKey": key}
    ).json() == {"valid": False}
    assert (
        requests.post(
            api + "/api/validate-api-key", headers=as_user, timeout=5, json={"apiKey": rotated}
        ).json()["valid"]
        is True
    )

    usage = requests.get(api + "/api/models/assistant/publish", headers=as_user, timeout=5).json()[
        "usage"
    ]
    assert usage["totalRequests"] == 4 and usage["tokensUsed"] > 0
    listing = requests.get(api + "/api/published-models", headers=as_user, timeout=5).json()
    assert listing["total"] == 1 and listing["publishedModels"][0]["modelName"] == "assistant"
    assert (
        requests.delete(
            api + "/api/models/assistant/publish", headers=as_user, timeout=5
        ).status_code
        == 200
    )
    assert requests.post(
        api + "/models/assistant/predict",
        headers={"X-API-Key": rotated},
        timeout=10,
        json={"messages": []},
    ).status_code in (401, 404)
    assert (
        requests.delete(api + "/api/models/assistant", headers=as_user, timeout=5).status_code
        == 200
    )


def test_management_errors_use_seed_002_shape(api: str) -> None:
    admin = _login(api)
    missing = requests.get(api + "/api/models/ghost?namespace=shop", headers=admin, timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "Model not found"
    bad = requests.post(api + "/api/models", headers=admin, timeout=5, json={"namespace": "shop"})
    assert bad.status_code == 400 and "name" in bad.json()["details"]
    assert requests.get(api + "/api/models", timeout=5).status_code == 401
    system = requests.get(api + "/api/admin/system", headers=admin, timeout=5).json()
    assert system["nodes"][0]["name"] == "node-1" and system["hasQuorum"] is True


def test_audit_log_records_changes_without_secrets(api: str) -> None:
    admin = _login(api)
    requests.post(api + "/api/admin/tenants", json={"name": "audited"}, headers=admin, timeout=5)
    made = requests.post(
        api + "/api/keys", json={"namespace": "audited"}, headers=admin, timeout=5
    ).json()
    requests.post(
        api + "/api/admin/login", json={"username": "admin", "password": "wrong!"}, timeout=5
    )
    entries = requests.get(api + "/api/admin/audit?limit=50", headers=admin, timeout=5).json()[
        "entries"
    ]
    by_path = {(e["method"], e["path"], e["status"]) for e in entries}
    assert ("POST", "/api/admin/tenants", 201) in by_path
    assert ("POST", "/api/keys", 201) in by_path
    refusals = requests.get(
        api + "/api/admin/audit?kind=refusals", headers=admin, timeout=5
    ).json()["entries"]
    assert ("POST", "/api/admin/login", 401) in {
        (e["method"], e["path"], e["status"]) for e in refusals
    }  # kept apart from the changes
    entries += refusals
    tenant_entry = next(e for e in entries if e["path"] == "/api/admin/tenants")
    assert tenant_entry["principal"]["role"] == "admin" and tenant_entry["result"] == "ok"
    text = str(entries)
    assert made["apiKey"] not in text and PASSWORD not in text and "wrong!" not in text
    assert (
        requests.get(api + "/api/admin/audit?limit=0", headers=admin, timeout=5).status_code == 400
    )


TENANT_ROUTES = [
    ("get", "/api/models"),
    ("post", "/api/models"),
    ("get", "/api/models/x"),
    ("put", "/api/models/x"),
    ("delete", "/api/models/x"),
    ("post", "/api/models/x/predict"),
    ("post", "/api/models/x/publish"),
    ("get", "/api/models/x/publish"),
    ("put", "/api/models/x/publish"),
    ("delete", "/api/models/x/publish"),
    ("post", "/api/models/x/publish/rotate-key"),
    ("get", "/api/published-models"),
    ("get", "/api/keys"),
    ("post", "/api/keys"),
]


@pytest.mark.parametrize(("method", "path"), TENANT_ROUTES)
def test_every_management_route_refuses_another_tenants_objects(
    api: str, method: str, path: str
) -> None:
    admin = _login(api)
    for name in ("iso-a", "iso-b"):
        requests.post(api + "/api/admin/tenants", json={"name": name}, headers=admin, timeout=5)
    requests.post(
        api + "/api/models?namespace=iso-b",
        headers=admin,
        timeout=5,
        json={"name": "x", "namespace": "iso-b", "modelId": MODEL},
    )
    key_a = requests.post(
        api + "/api/keys", json={"namespace": "iso-a", "role": "minter"}, headers=admin, timeout=5
    ).json()["apiKey"]
    as_a = {"Authorization": f"Bearer {key_a}"}
    creates = path in ("/api/models", "/api/keys") and method == "post"
    body = {"namespace": "iso-b", "name": "x"} if creates else {"config": {}, "messages": []}
    resp = requests.request(
        method, f"{api}{path}?namespace=iso-b", json=body, headers=as_a, timeout=5
    )
    assert resp.status_code == 403, resp.text
    assert "iso-b" in resp.json()["error"]
    # in its own tenant the same user does not see iso-b's model either
    own = requests.get(api + "/api/models", headers=as_a, timeout=5).json()["models"]
    assert all(m["namespace"] == "iso-a" for m in own)


def test_streamed_tokens_count_toward_usage(api: str) -> None:
    admin = _login(api)
    requests.post(api + "/api/admin/tenants", json={"name": "streams"}, headers=admin, timeout=5)
    requests.post(
        api + "/api/models?namespace=streams",
        headers=admin,
        timeout=5,
        json={"name": "talk", "namespace": "streams", "modelId": MODEL},
    )
    key = requests.post(
        api + "/api/models/talk/publish?namespace=streams",
        headers=admin,
        timeout=5,
        json={"config": {}},
    ).json()["publishedModel"]["apiKey"]
    body = {
        "model": MODEL,
        "stream": True,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "count me"}],
    }
    with requests.post(
        api + "/models/talk/v1/chat/completions",
        json=body,
        stream=True,
        headers={"X-API-Key": key},
        timeout=10,
    ) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert resp.status_code == 200 and lines[-1] == b"data: [DONE]"
    # the client did not ask for usage; the gateway did, so the stream's tokens are counted
    usage = requests.get(
        api + "/api/models/talk/publish?namespace=streams", headers=admin, timeout=5
    ).json()["usage"]
    assert usage["totalRequests"] == 1 and usage["tokensUsed"] >= 5


def test_admins_name_the_tenant_in_the_body_of_by_name_routes(api: str) -> None:
    admin = _login(api)
    requests.post(api + "/api/admin/tenants", json={"name": "bodied"}, headers=admin, timeout=5)
    created = requests.post(
        api + "/api/models",
        headers=admin,
        timeout=5,
        json={"name": "m1", "tenantId": "bodied", "modelId": MODEL},
    )
    assert created.status_code == 201, created.text
    # Without the tenant an admin is told to name it, and nothing changes.
    unnamed = requests.put(
        api + "/api/models/m1", headers=admin, timeout=5, json={"maxReplicas": 3}
    )
    assert unnamed.status_code == 400 and "tenantId" in unnamed.json()["error"]
    updated = requests.put(
        api + "/api/models/m1",
        headers=admin,
        timeout=5,
        json={"tenantId": "bodied", "maxReplicas": 3},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["scaling"]["maxReplicas"] == 3
    published = requests.post(
        api + "/api/models/m1/publish",
        headers=admin,
        timeout=5,
        json={"config": {"tenantId": "bodied"}},
    )
    assert published.status_code == 201, published.text
    assert published.json()["publishedModel"]["tenantId"] == "bodied"
    changed = requests.put(
        api + "/api/models/m1/publish",
        headers=admin,
        timeout=5,
        json={"config": {"tenantId": "bodied", "metadata": {"team": "x"}}},
    )
    assert changed.status_code == 200, changed.text
    # A body that names another tenant than the query is refused, and changes nothing.
    clash = requests.put(
        api + "/api/models/m1?namespace=shop",
        headers=admin,
        timeout=5,
        json={"tenantId": "bodied", "maxReplicas": 9},
    )
    assert clash.status_code == 400 and "differ" in clash.json()["error"]
    got = requests.get(api + "/api/models/m1?namespace=bodied", headers=admin, timeout=5).json()
    assert got["scaling"]["maxReplicas"] == 3


def test_storage_uri_is_kept_and_returned(api: str) -> None:
    admin = _login(api)
    requests.post(api + "/api/admin/tenants", json={"name": "stored"}, headers=admin, timeout=5)
    uri = "s3://models/llama-3/"
    created = requests.post(
        api + "/api/models?namespace=stored",
        headers=admin,
        timeout=5,
        json={"name": "s1", "modelId": MODEL, "storageUri": uri, "framework": "vllm"},
    )
    assert created.status_code == 201, created.text
    url = api + "/api/models/s1?namespace=stored"
    assert requests.get(url, headers=admin, timeout=5).json()["predictor"]["storageUri"] == uri
    kept = requests.put(url, headers=admin, timeout=5, json={"maxReplicas": 2}).json()
    assert kept["predictor"]["storageUri"] == uri  # an update that leaves it out keeps it
    moved = requests.put(url, headers=admin, timeout=5, json={"storageUri": "gs://b/m"}).json()
    assert moved["predictor"]["storageUri"] == "gs://b/m"


def _open_predict(api: str, path: str, source: str = "127.0.0.1") -> int:
    """A predict call without any credential, from the loopback address `source`."""
    host, port = api.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_an_admin_may_open_a_publication_with_limits_per_client_address(api: str) -> None:
    admin = _login(api)
    minter = _tenant_with_minter(api, admin, "opened")
    requests.post(
        api + "/api/models?namespace=opened",
        headers=admin,
        timeout=5,
        json={"name": "free", "modelId": MODEL},
    )
    config = {"rateLimiting": {"requestsPerMinute": 2}, "authentication": {"requireApiKey": False}}
    by_minter = requests.post(
        api + "/api/models/free/publish",
        headers={"Authorization": f"Bearer {minter}"},
        timeout=5,
        json={"config": config},
    )
    assert by_minter.status_code == 403 and "admin" in by_minter.json()["error"]
    url = api + "/api/models/free/publish?namespace=opened"
    assert requests.get(url, headers=admin, timeout=5).status_code == 404  # nothing published
    assert _open_predict(api, "/models/free/predict") == 401  # not published: no door opens

    published = requests.post(url, headers=admin, timeout=5, json={"config": config})
    assert published.status_code == 201, published.text
    assert published.json()["publishedModel"]["requireApiKey"] is False
    key = published.json()["publishedModel"]["apiKey"]
    # Each client address gets the publication's limit of its own.
    assert [_open_predict(api, "/models/free/predict") for _ in range(3)] == [200, 200, 429]
    assert [_open_predict(api, "/models/free/predict", "127.0.0.2") for _ in range(3)] == [
        200,
        200,
        429,
    ]
    keyed = requests.post(
        api + "/models/free/predict",
        headers={"X-API-Key": key},
        timeout=10,
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert keyed.status_code == 200  # its key still works, on the publication's own limit
    # Closed again: a caller without credential is refused.
    closed = requests.put(
        url, headers=admin, timeout=5, json={"config": {"authentication": {"requireApiKey": True}}}
    )
    assert closed.status_code == 200 and closed.json()["publishedModel"]["requireApiKey"] is True
    assert _open_predict(api, "/models/free/predict", "127.0.0.3") == 401


def test_whoami_names_the_caller_and_its_tenant(api: str) -> None:
    """The console's sign-in asks it: an admin's token, a tenant's key (with its expiry)."""
    admin = _login(api)
    me = requests.get(api + "/api/whoami", headers=admin, timeout=5).json()
    assert (me["kind"], me["admin"], me["tenant"]) == ("jwt", True, None)
    requests.post(api + "/api/admin/tenants", json={"name": "team-who"}, headers=admin, timeout=5)
    made = requests.post(
        api + "/api/keys",
        json={"name": "who", "namespace": "team-who", "expiresInSecs": 3600},
        headers=admin,
        timeout=5,
    ).json()
    key = {"Authorization": f"Bearer {made['apiKey']}"}
    me = requests.get(api + "/api/whoami", headers=key, timeout=5).json()
    assert (me["kind"], me["admin"], me["tenant"], me["role"]) == (
        "managed_key",
        False,
        "team-who",
        "user",
    )
    assert 3500 < me["expiresAt"] - time.time() <= 3600
    assert made["apiKey"] not in str(me)
    assert requests.get(api + "/api/whoami", timeout=5).status_code == 401


def test_a_keys_token_quota_counts_the_tokens_of_plain_and_streamed_answers(api: str) -> None:
    """Settling books the tokens each answer used (a stream's from its usage chunk): a key
    whose tokens an hour cover three answers gets three, then 429 naming the quota."""
    admin = _login(api)
    requests.post(api + "/api/admin/tenants", json={"name": "team-tok"}, headers=admin, timeout=5)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 4}
    probe = requests.post(api + "/v1/chat/completions", json=chat, headers=admin, timeout=10)
    per_answer = probe.json()["usage"]["total_tokens"]
    made = requests.post(
        api + "/api/keys",
        json={"namespace": "team-tok", "limits": {"tokensPerHour": 3 * per_answer}},
        headers=admin,
        timeout=5,
    ).json()
    key = {"Authorization": f"Bearer {made['apiKey']}"}
    answers = [
        requests.post(
            api + "/v1/chat/completions", json={**chat, "stream": stream}, headers=key, timeout=10
        )
        for stream in (False, True, True, False)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "tokens_per_hour" in answers[3].json()["error"]["message"]
