"""Who may do what: every route of the route table, with every kind of credential.

The expected answers are the README's access table (between the
`access-matrix` markers), read from the README itself, so the table users read
is the table that is tested. Each route is called with a body that is not
JSON and path parameters that name nothing, so a credential that gets past
authentication is answered 400/404/409 and nothing changes; a refused one is
answered 401 or 403.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from node.api.catalog import ROUTES
from node.api.table import Route
from tests.integration.conftest import Cluster
from tests.support import ROOT, strong, wait_for

ADMIN_KEY = strong("matrix-admin")
CLIENT_KEY = strong("matrix-client")
PUBLICATION = "pub"
ALLOWED = "✓"


def readme_table() -> dict[str, dict[str, str]]:
    """{group: {credential: expected}} from the README's access table."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- access-matrix:start -->")[1].split("<!-- access-matrix:end -->")[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in block.strip().splitlines()
        if not re.fullmatch(r"\|(\s*-+\s*\|)+", line.strip())
    ]
    header, body = rows[0], rows[1:]
    credentials = header[2:]
    return {row[0]: dict(zip(credentials, row[2:], strict=True)) for row in body}


TABLE = readme_table()


@dataclass
class Mesh:
    url: str
    credentials: dict[str, str | None]  # README column -> the key to send (None: nothing)


@pytest.fixture(scope="module")
def mesh(module_cluster: Cluster) -> Iterator[Mesh]:
    _, worker = module_cluster.echo(model="m1")
    node = module_cluster.node(
        "--worker-urls",
        worker,
        "--api-key",
        CLIENT_KEY,
        "--control-plane-api-keys",
        f"a:ops:admin:{ADMIN_KEY}",
        "--management-requests-per-minute",
        "0",
        "--management-burst",
        "0",
    )
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = requests.post(node.url + path, json=body, headers=admin, timeout=10)
        assert resp.status_code < 300, f"{path}: {resp.text}"
        return resp.json()  # type: ignore[no-any-return]

    post("/api/admin/tenants", {"name": "acme"})
    user = post("/api/keys", {"namespace": "acme", "role": "user"})
    minter = post("/api/keys", {"namespace": "acme", "role": "minter"})
    revoked = post("/api/keys", {"namespace": "acme"})
    resp = requests.delete(f"{node.url}/api/keys/{revoked['id']}", headers=admin, timeout=10)
    assert resp.ok
    expired = post("/api/keys", {"namespace": "acme", "expiresInSecs": 1})
    post("/api/models", {"name": PUBLICATION, "namespace": "acme", "modelId": "m1"})
    published = post(f"/api/models/{PUBLICATION}/publish?namespace=acme", {"config": {}})
    expired_key = {"Authorization": f"Bearer {expired['apiKey']}"}
    wait_for(
        lambda: (
            requests.get(node.url + "/api/keys", headers=expired_key, timeout=5).status_code == 401
        ),
        what="the short-lived key to expire",
    )
    yield Mesh(
        node.url,
        {
            "none": None,
            "client key": CLIENT_KEY,
            "tenant user": user["apiKey"],
            "tenant minter": minter["apiKey"],
            "publication key": published["publishedModel"]["apiKey"],
            "admin": ADMIN_KEY,
            "revoked key": revoked["apiKey"],
            "expired key": expired["apiKey"],
        },
    )


def operations() -> list[tuple[str, str, Route]]:
    """(path, method, route) of every route the node installs (the table it installs from)."""
    return sorted(((r.documented_path, r.method.lower(), r) for r in ROUTES), key=lambda t: t[:2])


def test_the_table_covers_every_auth_group_and_credential() -> None:
    groups = {route.audience.value for _, _, route in operations()}
    assert set(TABLE) == groups
    for group, row in TABLE.items():
        assert set(row.values()) <= {ALLOWED, "401", "403"}, group
        assert len(row) == 8, group


def _url(path: str) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "name" and path.startswith("/models/"):
            return PUBLICATION  # the published model's own path
        return str(uuid.uuid4()) if name == "worker_id" else f"missing-{name}"

    return re.sub(r"{(\w+)}", fill, path)


@pytest.mark.parametrize(
    ("path", "method", "route"),
    operations(),
    ids=[f"{m.upper()} {p}" for p, m, _ in operations()],
)
def test_every_route_answers_every_credential_as_the_table_says(
    mesh: Mesh, path: str, method: str, route: Route
) -> None:
    expected = TABLE[route.audience.value]
    body = b"this is not JSON" if route.body is not None else None
    wrong = []
    for credential, key in mesh.credentials.items():
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        resp = requests.request(
            method, mesh.url + _url(path), data=body, headers=headers, timeout=10
        )
        got = str(resp.status_code) if resp.status_code in (401, 403) else ALLOWED
        if got != expected[credential]:
            wrong.append(f"{credential}: {resp.status_code} {resp.text[:200]}")
    assert not wrong, f"{method.upper()} {path} ({route.audience.value}):\n" + "\n".join(wrong)
