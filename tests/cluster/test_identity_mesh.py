"""Keys and published-model limits on a 3-node mesh, with and without Redis (for quotas
across a window edge and borrowed by one busy node, docs/quotas.md)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.cluster.conftest import MODEL, Mesh
from tests.cluster.haproxy import HAProxy
from tests.support import RedisServer, strong, wait_for

SECRET = strong("identity-mesh-jwt")
ADMIN_KEY = strong("admin-key-for-tests")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _mesh(tmp_path: Path, *extra: str) -> Mesh:
    mesh = Mesh(
        tmp_path,
        extra=(
            "--control-plane-api-keys",
            f"a:ops:admin:{ADMIN_KEY}",
            "--jwt-secret",
            SECRET,
            *extra,
        ),
    )
    mesh.wait_ready_with(ADMIN)
    return mesh


def test_published_limits_are_exact_with_redis_and_headers_count_down(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis.log")
    redis_server.start()
    mesh = _mesh(tmp_path, "--redis-url", redis_server.url)
    try:
        key = _publish(mesh, {"requestsPerMinute": 20})
        remaining = []
        for url in itertools.islice(itertools.cycle(mesh.urls), 6):
            resp = requests.post(
                url + "/models/bot/predict", json=CHAT, headers={"X-API-Key": key}, timeout=10
            )
            assert resp.status_code == 200
            remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
        assert remaining == [19, 18, 17, 16, 15, 14]  # one counter, whichever node answers
        answers = _spread(mesh, key, 30)
        assert sum(r.status_code == 200 for r in answers) == 14
        refused = next(r for r in answers if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-RateLimit-Remaining"] == "0"

        def usage(url: str) -> dict:
            return requests.get(
                url + "/api/models/bot/publish?namespace=pub", headers=ADMIN, timeout=5
            ).json()["usage"]  # type: ignore[no-any-return]

        # usage is exact with Redis: every node reads the same totals at once
        wait_for(lambda: usage(mesh.urls[2])["totalRequests"] == 20, what="exact usage")
        assert all(
            usage(u)["totalRequests"] == 20 and usage(u)["tokensUsed"] > 0 for u in mesh.urls
        )
    finally:
        mesh.stop()
        redis_server.kill()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """One mesh without Redis for the tests that only add keys, tenants and publications
    of their own (the Redis test, with a mesh of its own, runs before it starts)."""
    m = _mesh(tmp_path_factory.mktemp("mesh"))
    try:
        yield m
    finally:
        m.stop()


def _chat_status(url: str, headers: dict[str, str]) -> int:
    """The status of a chat on `url` with `headers` (a key, as Bearer or X-API-Key)."""
    return requests.post(
        url + "/v1/chat/completions", json={**CHAT, "model": MODEL}, headers=headers, timeout=5
    ).status_code


def test_revoked_and_rotated_keys_are_refused_everywhere_within_a_second(mesh: Mesh) -> None:
    a, b, c = mesh.urls
    requests.post(
        a + "/api/admin/tenants", json={"name": "t1"}, headers=ADMIN, timeout=5
    ).raise_for_status()
    made = requests.post(b + "/api/keys", json={"namespace": "t1"}, headers=ADMIN, timeout=5)
    key, key_id = made.json()["apiKey"], made.json()["id"]
    bearer = {"Authorization": f"Bearer {key}"}
    for url in mesh.urls:
        wait_for(
            lambda u=url: _chat_status(u, bearer) == 200, what="the new key works on every node"
        )

    resp = requests.delete(f"{c}/api/keys/{key_id}", headers=ADMIN, timeout=5)
    acked = time.monotonic()
    assert resp.status_code == 200
    for url in mesh.urls:  # every node refuses it within one second of the acknowledgement
        wait_for(
            lambda u=url: _chat_status(u, bearer) == 401,
            timeout=1.0,
            interval=0.02,
            what="revocation everywhere",
        )
    assert time.monotonic() - acked < 1.0

    second = requests.post(
        a + "/api/keys", json={"namespace": "t1"}, headers=ADMIN, timeout=5
    ).json()
    rotated = requests.post(f"{b}/api/keys/{second['id']}/rotate", headers=ADMIN, timeout=5)
    acked = time.monotonic()
    new_key = rotated.json()["newApiKey"]
    for url in mesh.urls:
        wait_for(
            lambda u=url: _chat_status(u, {"X-API-Key": second["apiKey"]}) == 401,
            timeout=1.0,
            interval=0.02,
            what="the old key refused after rotation",
        )
        assert _chat_status(url, {"X-API-Key": new_key}) == 200
    assert time.monotonic() - acked < 1.5


def test_a_key_stops_at_its_expiry_on_every_node_though_its_record_stays(mesh: Mesh) -> None:
    """Each node keeps the principal it made for a key while the key's record stays, and
    expiry changes no record: the key must still be refused from its expiry on."""
    a, b, _ = mesh.urls
    requests.post(a + "/api/admin/tenants", json={"name": "t-exp"}, headers=ADMIN, timeout=5)
    made = requests.post(
        b + "/api/keys", json={"namespace": "t-exp", "expiresInSecs": 2}, headers=ADMIN, timeout=5
    ).json()
    bearer = {"Authorization": f"Bearer {made['apiKey']}"}
    expires = requests.get(b + "/api/whoami", headers=bearer, timeout=5).json()["expiresAt"]
    for url in mesh.urls:  # each node makes (and keeps) the key's principal
        wait_for(lambda u=url: _chat_status(u, bearer) == 200, what="the key on every node")
    wait_for(lambda: time.time() >= expires, timeout=5, what="the key's expiry")
    assert [_chat_status(url, bearer) for url in mesh.urls] == [401, 401, 401]
    shown = requests.get(f"{a}/api/keys/{made['id']}", headers=ADMIN, timeout=5).json()
    assert shown["status"] == "active"  # the record did not change: the expiry alone refused it


def _publish(mesh: Mesh, limits: dict) -> str:
    a = mesh.urls[0]
    requests.post(a + "/api/admin/tenants", json={"name": "pub"}, headers=ADMIN, timeout=5)
    requests.post(
        a + "/api/models",
        headers=ADMIN,
        timeout=5,
        json={"name": "bot", "namespace": "pub", "modelId": MODEL},
    ).raise_for_status()
    resp = requests.post(
        a + "/api/models/bot/publish?namespace=pub",
        headers=ADMIN,
        timeout=5,
        json={"config": {"rateLimiting": limits}},
    )
    assert resp.status_code == 201, resp.text
    key = resp.json()["publishedModel"]["apiKey"]
    for url in mesh.urls:
        wait_for(
            lambda u=url: (
                requests.get(u + "/api/published-models", headers=ADMIN, timeout=5).json()["total"]
                == 1
            ),
            what="published",
        )
    return key  # type: ignore[no-any-return]


def _predicts(url: str, key: str, count: int) -> list[requests.Response]:
    with requests.Session() as session:
        return [
            session.post(
                url + "/models/bot/predict", json=CHAT, headers={"X-API-Key": key}, timeout=10
            )
            for _ in range(count)
        ]


def _spread(mesh: Mesh, key: str, count: int) -> list[requests.Response]:
    urls = itertools.cycle(mesh.urls)
    targets = [next(urls) for _ in range(count)]
    with ThreadPoolExecutor(6) as pool:
        return list(
            pool.map(
                lambda u: requests.post(
                    u + "/models/bot/predict", json=CHAT, headers={"X-API-Key": key}, timeout=10
                ),
                targets,
            )
        )


def _limited_key(mesh: Mesh, per_minute: int) -> str:
    """A managed key with `per_minute`, known to every node."""
    url = mesh.urls[0]
    body = {"namespace": "pub", "limits": {"requestsPerMinute": per_minute}}
    made = requests.post(url + "/api/keys", json=body, headers=ADMIN, timeout=5)
    assert made.status_code == 201, made.text
    for node in mesh.urls:
        wait_for(
            lambda u=node: (
                requests.get(f"{u}/api/keys/{made.json()['id']}", headers=ADMIN, timeout=5).ok
            ),
            what="the key on every node",
        )
    return made.json()["apiKey"]  # type: ignore[no-any-return]


def _chats(url: str, key: str, count: int) -> list[requests.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    with requests.Session() as session:
        return [
            session.post(
                url + "/v1/chat/completions",
                json={**CHAT, "model": MODEL},
                headers=headers,
                timeout=10,
            )
            for _ in range(count)
        ]


def test_published_limits_hold_across_a_window_edge_without_redis(
    mesh: Mesh, tmp_path: Path
) -> None:
    """`requestsPerMinute: 10` on 3 nodes without Redis, through HAProxy round-robin.

    With clock-aligned windows, a burst just before a minute boundary and another just
    after were both admitted (14 of 10 were seen). Windows now slide: a request counts
    for 60 to 61 s from its arrival on the node's monotonic clock, wherever the wall
    clock's minute is. So the test needs no wall-clock boundary (and waits for none):
    the second burst comes 2 s after the first, and with any fixed window an edge
    between them would have let it through. Every 60 s interval admits at most
    L + N - 1 = 12.

    Then a managed key sees all its traffic on one node: the idle peers lend it their
    unused shares (all but one request each) through the peer poll, so that node admits
    the whole limit, not ceil(10 / 3) = 4, and the headers show the key's limit.
    """
    lb = None
    try:
        lb = HAProxy(tmp_path, mesh)
        key = _publish(mesh, {"requestsPerMinute": 10})
        first = _predicts(lb.url, key, 15)
        time.sleep(2.0)  # any fixed window edge in between would have reset the count
        second = _predicts(lb.url, key, 15)
        statuses = Counter(r.status_code for r in first + second)
        assert set(statuses) == {200, 429}, statuses
        assert 10 <= statuses[200] <= 12, statuses  # local shares: limit + N - 1
        assert all(r.headers["X-RateLimit-Limit"] == "10" for r in first + second)
        refused = next(r for r in second if r.status_code == 429)
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert int(refused.headers["Retry-After"]) >= 50  # the first burst leaves in ~60 s

        one, n1 = _limited_key(mesh, 10), mesh.urls[0]
        admitted = sum(r.status_code == 200 for r in _chats(n1, one, 6))
        assert admitted == 4  # n1's own share, before its peers hear that it wants more
        deadline = time.monotonic() + 8
        while admitted < 10 and time.monotonic() < deadline:
            admitted += _chats(n1, one, 1)[0].status_code == 200
            time.sleep(0.1)
        assert admitted == 10, admitted  # 4 + 3 + 3: each idle peer keeps one in reserve
        last = _chats(n1, one, 1)[0]
        assert last.status_code == 429
        limit = (last.headers["X-RateLimit-Limit"], last.headers["X-RateLimit-Remaining"])
        assert limit == ("10", "0")
    finally:
        if lb is not None:
            lb.stop()
