"""Bearer tokens from an identity provider (RS256 via a JWKS file), through a real node."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.conftest import Cluster

ISSUER, AUDIENCE = "https://idp.example.test/", "meshgate-api"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def idp(
    module_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    key = _key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path_factory.mktemp("idp") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    node = module_cluster.node(
        "--idp-jwks-file",
        str(jwks),
        "--idp-issuer",
        ISSUER,
        "--idp-audience",
        AUDIENCE,
        "--idp-role-claim",
        "groups",
        "--idp-admin-values",
        "platform-admins",
        ready=False,
    )
    yield node.url, key


def _token(key: Any, *, kid: str = "k1", alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u1",
        "iat": now,
        "exp": now + 300,
        "groups": ["devs"],
        "tenant": "team-x",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _get(url: str, path: str, token: str) -> requests.Response:
    return requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=5)


def test_valid_idp_tokens_map_roles_and_tenants(idp: tuple[str, Any]) -> None:
    url, key = idp
    admin = _token(key, groups=["platform-admins"], tenant=None)
    assert _get(url, "/workers", admin).status_code == 200
    created = requests.post(
        url + "/api/admin/tenants",
        json={"name": "team-x"},
        timeout=5,
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert created.status_code == 201
    user = _token(key)
    assert _get(url, "/api/models", user).status_code == 200
    assert _get(url, "/workers", user).status_code == 403  # a user is not an admin
    assert _get(url, "/api/models?namespace=other", user).status_code == 403


def _none_token() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return (
        part({"alg": "none", "typ": "JWT"})
        + "."
        + part(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "x",
                "iat": now,
                "exp": now + 300,
                "groups": ["platform-admins"],
            }
        )
        + "."
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: _none_token(), id="alg-none"),
        pytest.param(lambda key: _token(key, exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda key: _token(key, iss="https://evil.example/"), id="wrong-issuer"),
        pytest.param(lambda key: _token(key, aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda key: _token(_key()), id="bad-signature"),
        pytest.param(lambda key: _token(key, kid="k-unknown"), id="unknown-kid"),
        pytest.param(lambda key: _token(key, nbf=int(time.time()) + 3600), id="not-yet-valid"),
        pytest.param(lambda key: _tampered(key), id="tampered-payload"),
    ],
)
def test_bad_tokens_are_refused(idp: tuple[str, Any], make: Any) -> None:
    url, key = idp
    token = make(key)
    for path in ("/workers", "/api/models", "/ha/status"):
        resp = _get(url, path, token)
        assert resp.status_code == 401, (path, resp.text)
    assert "token" in _get(url, "/api/models", token).json()["error"]


def _tampered(key: Any) -> str:
    header, payload, signature = _token(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["groups"] = ["platform-admins"]  # try to become admin, keep the old signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_hs256_signed_with_the_public_key_is_refused(idp: tuple[str, Any], tmp_path: Path) -> None:
    url, key = idp
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "x",
        "iat": now,
        "exp": now + 60,
        "groups": ["platform-admins"],
    }
    header = {"alg": "HS256", "kid": "k1"}
    signing = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
        + b"."
        + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    )
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(b"=")
    assert _get(url, "/workers", (signing + b"." + sig).decode()).status_code == 401


def test_an_idp_token_cannot_log_out_a_meshgate_user_of_the_same_name(
    idp: tuple[str, Any],
) -> None:
    """Subjects live in two namespaces: an IdP user named "admin" is not meshgate's admin,
    so its logout must not revoke the tokens meshgate issued to its admin."""
    url, key = idp
    token = _token(key, sub="admin", groups=["devs"], tenant="team-x")
    resp = requests.post(
        url + "/api/admin/logout", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert resp.status_code == 403, resp.text
    admin = _token(key, groups=["platform-admins"], tenant=None)
    requests.post(
        url + "/api/admin/tenants",
        json={"name": "team-x"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=5,
    )  # 201, or 409 when an earlier test made it
    for groups, status in ((["devs"], 403), (["minter"], 201)):  # --idp-minter-values
        who = _token(key, sub="m", groups=groups, tenant="team-x")
        made = requests.post(
            url + "/api/keys", json={}, headers={"Authorization": f"Bearer {who}"}, timeout=5
        )
        assert made.status_code == status, made.text
