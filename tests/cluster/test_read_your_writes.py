"""Read-your-writes on any node of a real 3-node mesh (issue 10).

- create a model, then publish it at once, 200 times through HAProxy, which sends
  consecutive requests to different nodes: zero 404s (the publish handler makes its
  node current first: Raft's ReadIndex);
- `X-Meshgate-Index` on every answer, never going back on a node; a read elsewhere
  with it as `X-Meshgate-Min-Index` sees the write; an index no node has reached is
  a 503 with Retry-After after `--min-index-wait-secs`; a malformed one is a 400;
- `?consistent=true` on a follower returns a write just made on the leader.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from node.localmesh import LocalNode
from tests.cluster.conftest import MODEL, Mesh
from tests.cluster.haproxy import HAProxy
from tests.support import strong, wait_for

WAIT_SECS = 0.5  # --min-index-wait-secs: short, so that the 503 comes quickly
ROUNDS = 200
TENANTS = ("ryw0", "ryw1", "ryw2")  # a tenant holds at most 100 publications
ADMIN_KEY = strong("read-your-writes-admin")
# Publishing mints a key, and from the first key on the mesh requires credentials.
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh(
        tmp_path_factory.mktemp("ryw"),
        extra=(
            "--min-index-wait-secs",
            str(WAIT_SECS),
            "--control-plane-api-keys",
            f"a:ops:admin:{ADMIN_KEY}",
        ),
    )
    try:
        mesh.wait_ready_with(ADMIN)
        yield mesh
    finally:
        mesh.stop()


def get(url: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(url, headers={**ADMIN, **(headers or {})}, timeout=10)


def post(url: str, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    """A new connection each time, so that HAProxy balances every request."""
    return requests.post(url, json=body, headers={**ADMIN, **(headers or {})}, timeout=10)


def leader_of(mesh: Mesh) -> LocalNode:
    def find() -> LocalNode | None:
        return next(
            (n for n in mesh.nodes if get(n.url + "/ha/local").json()["role"] == "leader"), None
        )

    return wait_for(find, what="a leader")  # type: ignore[no-any-return]


def index_of(resp: requests.Response) -> int:
    return int(resp.headers["X-Meshgate-Index"])


def test_create_then_publish_through_haproxy_never_404s(mesh: Mesh) -> None:
    lb = HAProxy(mesh.tmp_path, mesh)
    try:
        for tenant in TENANTS:
            made = post(lb.url + "/api/admin/tenants", {"name": tenant})
            assert made.status_code == 201, made.text
        before = _sessions(lb)
        statuses: dict[int, int] = {}
        started = time.monotonic()
        for i in range(ROUNDS):
            tenant = TENANTS[i % len(TENANTS)]
            created = post(
                lb.url + "/api/models", {"name": f"m{i}", "namespace": tenant, "modelId": MODEL}
            )
            assert created.status_code == 201, created.text
            published = post(f"{lb.url}/api/models/m{i}/publish?namespace={tenant}", {"config": {}})
            statuses[published.status_code] = statuses.get(published.status_code, 0) + 1
            assert published.status_code in (201, 404), published.text
        took = time.monotonic() - started
        assert statuses == {201: ROUNDS}, statuses
        # Round robin over three nodes: each took its share, so the pairs crossed nodes.
        spread = {name: count - before[name] for name, count in _sessions(lb).items()}
        assert all(count >= ROUNDS / 2 for count in spread.values()), spread
        assert took < 30, f"{ROUNDS} rounds took {took:.1f} s"
    finally:
        lb.stop()


def _sessions(lb: HAProxy) -> dict[str, int]:
    """Requests each node has taken through `lb` (HAProxy's `stot`)."""
    return {name: int(row["stot"]) for name, row in lb.rows().items()}


def test_min_index_waits_for_the_write_and_the_index_only_grows(mesh: Mesh) -> None:
    leader = leader_of(mesh)
    follower = next(n for n in mesh.nodes if n is not leader)
    seen: dict[str, int] = {}
    for i in range(20):
        write = post(leader.url + "/ha/config", {"key": "ryw", "value": i})
        assert write.status_code in (200, 201), write.text
        written = index_of(write)
        assert written >= seen.get(leader.name, 0)
        seen[leader.name] = written
        read = get(follower.url + "/ha/config/ryw", {"X-Meshgate-Min-Index": str(written)})
        assert read.status_code == 200, read.text
        assert read.json()["value"] == i
        assert index_of(read) >= max(written, seen.get(follower.name, 0))
        seen[follower.name] = index_of(read)


def test_an_index_never_reached_is_a_503_after_the_wait(mesh: Mesh) -> None:
    node = mesh.nodes[0]
    applied = index_of(get(node.url + "/ha/config"))
    started = time.monotonic()
    resp = get(node.url + "/ha/config", {"X-Meshgate-Min-Index": str(applied + 10**6)})
    waited = time.monotonic() - started
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
    assert WAIT_SECS <= waited < WAIT_SECS + 5
    error = resp.json()["error"]
    assert error["min_index"] == applied + 10**6 and error["applied_index"] >= applied
    assert "X-Meshgate-Min-Index" in error["message"]
    assert index_of(resp) >= applied


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1" * 19, "0x10", ""])
def test_a_malformed_min_index_is_a_400_and_changes_nothing(mesh: Mesh, value: str) -> None:
    node = mesh.nodes[1]
    resp = post(
        node.url + "/ha/config", {"key": "never", "value": 1}, {"X-Meshgate-Min-Index": value}
    )
    assert resp.status_code == 400, resp.text
    assert "X-Meshgate-Min-Index" in resp.text
    assert get(node.url + "/ha/config/never?consistent=true").status_code == 404


def test_a_consistent_read_on_a_follower_returns_a_write_made_elsewhere(mesh: Mesh) -> None:
    leader = leader_of(mesh)
    followers = [n for n in mesh.nodes if n is not leader]
    for i in range(30):
        write = post(leader.url + "/ha/config", {"key": "lin", "value": i})
        assert write.status_code in (200, 201), write.text
        read = get(followers[i % 2].url + "/ha/config/lin?consistent=true")
        assert read.status_code == 200 and read.json()["value"] == i, read.text
        assert index_of(read) >= index_of(write)
    bad = get(followers[0].url + "/ha/config/lin?consistent=maybe")
    assert bad.status_code == 400 and "consistent" in bad.text, bad.text


def test_the_index_is_on_errors_and_every_node_reaches_the_same(mesh: Mesh) -> None:
    for node in mesh.nodes:
        missing = get(node.url + "/ha/config/absent-key")
        assert missing.status_code == 404 and index_of(missing) > 0
    wait_for(
        lambda: len({index_of(get(n.url + "/ha/config")) for n in mesh.nodes}) == 1,
        what="every node at the same applied index once writes stop",
    )


def test_the_index_is_on_streamed_answers_and_refusals(mesh: Mesh) -> None:
    node = mesh.nodes[2]
    chat = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with requests.post(
        node.url + "/v1/chat/completions", json=chat, headers=ADMIN, stream=True, timeout=10
    ) as streamed:
        assert streamed.status_code == 200 and index_of(streamed) > 0
        assert b"data:" in b"".join(streamed.iter_content(None))
    refused = requests.get(node.url + "/ha/config", timeout=5)  # no credential
    assert refused.status_code == 401 and index_of(refused) > 0
