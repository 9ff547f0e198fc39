"""The replicated tokenizer registry on a real 3-node mesh (issue 12).

A tokenizer registered on n1 from a directory becomes ready on all three, its files
reaching n2 and n3 by peer fetch (the source directory is deleted as soon as n1 has
answered, so no other node could have read it). A wiped node gets the files back;
a changed file is found and fetched again; bad registrations get their 4xx or end
`failed` with the reason; the blob route refuses callers without the mesh token.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from node.ha.peers import MESH_TOKEN_HEADER, mesh_token
from node.localmesh import LocalNode
from tests.cluster.conftest import Mesh
from tests.support import MESH_SECRET, http_server, strong, wait_for
from tests.tokenizer_files import build_tokenizer_dir

ADMIN_KEY = strong("tokenizer-registry-admin")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("tokenizers")
    (tmp / "hf-cache").mkdir()
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp / "hf-cache"), "HF_HOME": str(tmp)}
    mesh = Mesh(tmp, extra=("--control-plane-api-keys", f"a:ops:admin:{ADMIN_KEY}"), env=env)
    try:
        mesh.wait_ready_with(ADMIN)
        yield mesh
    finally:
        mesh.stop()


def call(method: str, url: str, body: Any = None) -> requests.Response:
    return requests.request(method, url, json=body, headers=ADMIN, timeout=10)


def register(node: LocalNode, body: dict[str, Any]) -> requests.Response:
    return call("POST", node.url + "/v1/tokenizers", body)


def views(node: LocalNode, tokenizer_id: str) -> dict[str, Any]:
    resp = call("GET", f"{node.url}/v1/tokenizers/{tokenizer_id}/status")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def settled(node: LocalNode, tokenizer_id: str, state: str) -> dict[str, Any]:
    """The status once every node's view is `state` (seen from `node`)."""

    def reached() -> dict[str, Any] | None:
        status = views(node, tokenizer_id)
        states = [view["state"] for view in status["nodes"].values()]
        return status if states == [state] * 3 and status["status"] == state else None

    return wait_for(reached, timeout=20, what=f"{tokenizer_id} {state} everywhere")  # type: ignore[no-any-return]


def blob(node: LocalNode, digest: str) -> Path:
    return node.data_dir / "blobs" / "sha256" / digest


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def registered(mesh: Mesh) -> dict[str, Any]:
    """A tokenizer registered on n1 from a directory deleted right after the 202."""
    source = build_tokenizer_dir(mesh.tmp_path / "llama-src", style="llama3")
    for node in mesh.nodes[1:]:
        assert not (node.data_dir / "blobs" / "sha256").exists() or not any(
            (node.data_dir / "blobs" / "sha256").iterdir()
        )
    resp = register(mesh.nodes[0], {"name": "llama-test", "source": str(source)})
    shutil.rmtree(source)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "pending" and body["name"] == "llama-test"
    assert resp.headers["Location"] == body["location"] == f"/v1/tokenizers/{body['id']}"
    # Another node reads the record once it has applied the write (read-your-writes).
    seen = {"X-Meshgate-Min-Index": resp.headers["X-Meshgate-Index"], **ADMIN}
    record = requests.get(mesh.nodes[2].url + body["location"], headers=seen, timeout=10)
    assert record.status_code == 200, record.text
    return record.json()  # type: ignore[no-any-return]


def test_ready_on_every_node_with_the_files_fetched_from_a_peer(
    mesh: Mesh, registered: dict[str, Any]
) -> None:
    assert set(registered["files"]) == {"tokenizer.json", "tokenizer_config.json"}
    assert registered["source"].endswith("llama-src")
    status = settled(mesh.nodes[1], registered["id"], "ready")
    assert set(status["nodes"]) == {"n1", "n2", "n3"}
    assert all(v["reason"] is None for v in status["nodes"].values())
    for node in mesh.nodes:
        for entry in registered["files"].values():
            assert sha(blob(node, entry["sha256"])) == entry["sha256"]
    listed = call("GET", mesh.nodes[2].url + "/v1/tokenizers").json()
    assert [t["name"] for t in listed["tokenizers"]] == ["llama-test"]
    assert listed["tokenizers"][0]["status"]["state"] == "ready"
    # n3 serves /v1/tokenize with the files it fetched (the registry is its catalog)
    text = "Hello, 世界 🙂"
    for key in ("llama-test", registered["id"]):
        tokens = call(
            "POST", mesh.nodes[2].url + "/v1/tokenize", {"tokenizer": key, "prompt": text}
        )
        assert tokens.status_code == 200, tokens.text
        ids = tokens.json()["tokens"]
        assert tokens.json()["count"] == len(ids) > 0 and tokens.json()["max_model_len"] == 4096
    back = call("POST", mesh.nodes[2].url + "/v1/detokenize", {"tokenizer": key, "tokens": ids})
    assert back.status_code == 200 and back.json()["text"].endswith(text), back.text


def test_a_wiped_node_fetches_the_files_again(mesh: Mesh, registered: dict[str, Any]) -> None:
    settled(mesh.nodes[0], registered["id"], "ready")
    n3 = mesh.nodes[2]
    n3.proc.stop()
    shutil.rmtree(n3.data_dir / "blobs")
    n3.restart()
    n3.wait_ready()
    settled(n3, registered["id"], "ready")
    for entry in registered["files"].values():
        assert sha(blob(n3, entry["sha256"])) == entry["sha256"]


def test_a_changed_cache_file_is_found_and_fetched_again(
    mesh: Mesh, registered: dict[str, Any]
) -> None:
    n2 = mesh.nodes[1]
    digest = registered["files"]["tokenizer.json"]["sha256"]
    settled(n2, registered["id"], "ready")
    blob(n2, digest).write_bytes(b'{"model": "tampered"}')
    wait_for(lambda: sha(blob(n2, digest)) == digest, timeout=15, what="the file fetched again")
    assert "changed on disk" in n2.proc.log()


def test_the_blob_route_wants_the_mesh_token_and_a_digest(
    mesh: Mesh, registered: dict[str, Any]
) -> None:
    digest = registered["files"]["tokenizer.json"]["sha256"]
    url = f"{mesh.nodes[0].url}/ha/blobs/{digest}"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = {MESH_TOKEN_HEADER: mesh_token(strong("another mesh"))}
    assert requests.get(url, headers=wrong, timeout=5).status_code == 401
    peer = {MESH_TOKEN_HEADER: mesh_token(MESH_SECRET)}
    resp = requests.get(url, headers=peer, timeout=5)
    assert resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == digest
    base = f"{mesh.nodes[0].url}/ha/blobs/"
    for bad in ("..%2F..%2Fraft.dump", "%2e%2e%2fsecret", digest.upper(), digest[:-1] + "g"):
        resp = requests.get(base + bad, headers=peer, timeout=5)
        assert resp.status_code == 400, (bad, resp.status_code, resp.text)
    absent = "0" * 64
    assert requests.get(base + absent, headers=peer, timeout=5).status_code == 404


def test_bad_registrations_get_a_4xx_and_change_nothing(
    mesh: Mesh, registered: dict[str, Any]
) -> None:
    n1 = mesh.nodes[0]
    for body, where in [
        ({"source": "/x"}, "name"),
        ({"name": "a b", "source": "/x"}, "name"),
        ({"name": "x", "source": "/x", "extra": 1}, "extra"),
        ({"name": "x", "source": "ftp://host/tokenizer.json"}, "source"),
        ({"name": "x", "source": str(mesh.tmp_path / "no-such-dir")}, "does not exist"),
        ({"name": "x", "source": str(mesh.tmp_path)}, "holds no tokenizer.json"),
    ]:
        resp = register(n1, body)
        assert resp.status_code == 400, (body, resp.text)
        assert where in resp.text
    taken = register(n1, {"name": "llama-test", "source": "/x"})
    assert taken.status_code == 409 and taken.json()["error"]["tokenizer_id"] == registered["id"]
    assert call("GET", n1.url + "/v1/tokenizers/" + "1" * 8).status_code == 400
    unknown = "/v1/tokenizers/00000000-0000-4000-8000-000000000000"
    assert call("GET", n1.url + unknown).status_code == 404
    assert call("GET", n1.url + unknown + "/status").status_code == 404
    assert call("DELETE", n1.url + unknown).status_code == 404
    assert call("GET", n1.url + "/v1/tokenizers").json()["total"] == 1


def test_what_fails_later_ends_failed_everywhere_with_the_reason(mesh: Mesh) -> None:
    source = build_tokenizer_dir(mesh.tmp_path / "bad-template", style="qwen25")
    broken = register(
        mesh.nodes[1],
        {"name": "broken", "source": str(source), "chat_template": "{% for m in messages %}"},
    )
    assert broken.status_code == 202, broken.text
    status = settled(mesh.nodes[2], broken.json()["id"], "failed")
    for view in status["nodes"].values():
        assert view["state"] == "failed" and "load error" in view["reason"]
        assert "endfor" in view["reason"] or "end of template" in view["reason"]
    offline = register(mesh.nodes[0], {"name": "hub", "source": "meta-llama/Llama-3.1-8B"})
    assert offline.status_code == 202 and offline.json()["status"] == "failed"
    status = settled(mesh.nodes[1], offline.json()["id"], "failed")
    for view in status["nodes"].values():
        assert "not in the local Hugging Face cache" in view["reason"]


def test_delete_removes_it_everywhere_with_the_files_no_other_uses(mesh: Mesh) -> None:
    # Same tokenizer.json as "broken" (training is deterministic), its own config.
    source = build_tokenizer_dir(mesh.tmp_path / "qwen-src", "qwen25", model_max_length=1234)
    made = register(mesh.nodes[0], {"name": "qwen-test", "source": str(source)})
    tokenizer_id = made.json()["id"]
    settled(mesh.nodes[0], tokenizer_id, "ready")
    record = call("GET", f"{mesh.nodes[0].url}/v1/tokenizers/{tokenizer_id}").json()
    gone = call("DELETE", f"{mesh.nodes[2].url}/v1/tokenizers/{tokenizer_id}")
    assert gone.status_code == 200 and gone.json()["status"] == "deleted"
    left = call("GET", mesh.nodes[2].url + "/v1/tokenizers").json()["tokenizers"]
    used = {f["sha256"] for t in left for f in t["files"].values()}
    mine = {f["sha256"] for f in record["files"].values()}
    assert mine - used and mine & used
    for node in mesh.nodes:
        wait_for(
            lambda node=node: all(not blob(node, d).exists() for d in mine - used),
            what=f"files of {tokenizer_id} removed from {node.name}",
        )
        assert all(blob(node, d).exists() for d in mine & used)
        assert call("GET", f"{node.url}/v1/tokenizers/{tokenizer_id}").status_code == 404


def test_two_registrations_of_one_name_at_once_leave_one_and_no_stray_file(mesh: Mesh) -> None:
    sources = [
        build_tokenizer_dir(mesh.tmp_path / f"race-{i}", "llama3", model_max_length=100 + i)
        for i in range(2)
    ]
    configs = [sha(s / "tokenizer_config.json") for s in sources]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda i: register(mesh.nodes[i], {"name": "race", "source": str(sources[i])}),
                range(2),
            )
        )
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    loser = next(i for i, a in enumerate(answers) if a.status_code == 409)
    assert not blob(mesh.nodes[loser], configs[loser]).exists()
    winner = answers[1 - loser].json()["id"]
    settled(mesh.nodes[0], winner, "ready")
    assert call("DELETE", f"{mesh.nodes[0].url}/v1/tokenizers/{winner}").status_code == 200


SECRET = "X-Amz-Signature=s3cr3t-signature-token"


@pytest.fixture(scope="module")
def files_url(mesh: Mesh) -> Iterator[str]:
    """A loopback HTTP server of a folder whose tokenizer.json is not a tokenizer file."""
    folder = mesh.tmp_path / "served"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(b'{"not": "a tokenizer", "pad": "served-bytes"}')
    with http_server(functools.partial(SimpleHTTPRequestHandler, directory=str(folder))) as url:
        yield url


def test_url_sources_bad_host_refused_content_refused_query_never_shown(
    mesh: Mesh, files_url: str
) -> None:
    n1 = mesh.nodes[0]
    bad_host = register(n1, {"name": "badhost", "source": "http://a..b/tokenizer.json"})
    assert bad_host.status_code == 400 and "host" in bad_host.json()["error"]["message"]
    served = (mesh.tmp_path / "served" / "tokenizer.json").read_bytes()
    signed = f"{files_url}/tokenizer.json?{SECRET}"
    refused = register(n1, {"name": "not-a-tokenizer", "source": signed})
    assert refused.status_code == 202 and refused.json()["status"] == "failed", refused.text
    assert "not a tokenizers file" in refused.json()["message"]
    assert not blob(n1, hashlib.sha256(served).hexdigest()).exists()  # dropped again
    padding = "p" * (4090 - len(files_url) - len("//tokenizer.json"))
    long_path = f"{files_url}/{padding}/tokenizer.json"  # 4090 chars: with the reason, over 4096
    missing = register(n1, {"name": "long-url", "source": long_path})
    assert missing.status_code == 202 and missing.json()["status"] == "failed", missing.text
    assert len(missing.json()["message"]) == 4096
    settled(n1, missing.json()["id"], "failed")
    record = call("GET", f"{n1.url}/v1/tokenizers/{refused.json()['id']}").json()
    assert record["source"] == f"{files_url}/tokenizer.json"
    for node in mesh.nodes:
        for path in (
            "/v1/tokenizers",
            f"/v1/tokenizers/{refused.json()['id']}/status",
            "/ha/local",
        ):
            shown = call("GET", node.url + path)
            assert shown.status_code == 200 and "s3cr3t" not in shown.text, (node.name, path)


def test_a_template_near_the_limit_is_taken_and_one_over_is_400(mesh: Mesh) -> None:
    source = str(build_tokenizer_dir(mesh.tmp_path / "big-template", "llama3"))
    over = register(
        mesh.nodes[0], {"name": "t-over", "source": source, "chat_template": "x" * 49153}
    )
    assert over.status_code == 400 and "chat_template" in over.text
    near = register(
        mesh.nodes[0], {"name": "t-near", "source": source, "chat_template": "x" * 49152}
    )
    assert near.status_code == 202, near.text
    settled(mesh.nodes[1], near.json()["id"], "ready")


def test_tokenize_by_name_while_tokenizers_come_and_go_never_fails(
    mesh: Mesh, registered: dict[str, Any]
) -> None:
    n1 = mesh.nodes[0]
    source = str(build_tokenizer_dir(mesh.tmp_path / "churn", "llama3"))

    def churn(i: int) -> None:
        made = register(n1, {"name": f"churn-{i}", "source": source})
        assert made.status_code == 202, made.text
        settled(n1, made.json()["id"], "ready")
        assert call("DELETE", f"{n1.url}/v1/tokenizers/{made.json()['id']}").status_code == 200

    def tokenize(_: int) -> list[int]:
        body = {"tokenizer": "llama-test", "prompt": "hello"}
        return [call("POST", n1.url + "/v1/tokenize", body).status_code for _ in range(20)]

    with ThreadPoolExecutor(3) as pool:
        churned = pool.map(churn, range(3))
        said = [s for answers in pool.map(tokenize, range(3)) for s in answers]
        list(churned)
    assert set(said) == {200}, said
