"""Unit tests of JWT issuing and verification (`node/identity/tokens.py`, `jwks.py`).

Every refusal rule of `TokenService.verify` has a test here, and every refusal
is checked not to echo the token or a secret. Keys are generated with
`cryptography`; the JWKS URL is served by an aiohttp server on loopback.
pytest-asyncio is not installed: async code runs under `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import string
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from node.identity.jwks import JwksCache, JwksError, parse_jwks
from node.identity.tokens import Identity, IdpSettings, TokenError, TokenService

NOW = 1_700_000_000.0
SECRET = "s3cret-for-tests-0123456789-abcdefghij"
IDP_ISS = "https://idp.example.com/realms/main"
IDP_AUD = "meshgate-api"


def clock() -> float:
    return NOW


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand, so tests can build what pyjwt refuses to sign."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(signature)}"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa_other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }


def jwk(private: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        data = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    if kid is not None:
        data["kid"] = kid
    return {**data, "use": "sig", **extra}


def idp_service(tmp_path: Path, jwks: dict[str, Any], **settings: Any) -> TokenService:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    options: dict[str, Any] = {"jwks_file": str(path), "issuer": IDP_ISS, "audience": IDP_AUD}
    service = TokenService(SECRET, idp=IdpSettings(**{**options, **settings}), clock=clock)
    asyncio.run(service.refresh())
    assert service.jwks is not None and service.jwks.last_error is None
    return service


@pytest.fixture
def idp(tmp_path: Path, keys: dict[str, Any]) -> TokenService:
    return idp_service(tmp_path, {"keys": [jwk(keys["rsa"], "rsa-1"), jwk(keys["ec"], "ec-1")]})


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": IDP_ISS,
        "aud": IDP_AUD,
        "sub": "u-42",
        "name": "Bob",
        "role": "user",
        "tenant": "acme",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def idp_token(
    keys: dict[str, Any], kid: str | None = "rsa-1", alg: str = "RS256", **kw: Any
) -> str:
    private = keys["ec"] if alg.startswith("ES") else keys[kw.pop("signer", "rsa")]
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**kw), private, algorithm=alg, headers=headers)


def refused(service: TokenService, token: str, match: str | None = None) -> TokenError:
    with pytest.raises(TokenError, match=match) as info:
        service.verify(token)
    message = str(info.value)
    assert SECRET not in message
    for segment in token.split("."):
        assert len(segment) < 8 or segment not in message
    return info.value


# --- positive ---------------------------------------------------------------


def test_own_hs256_round_trip() -> None:
    service = TokenService(SECRET, clock=clock)
    token, identity = service.issue("alice", "Alice", "admin", None)
    assert service.looks_like_jwt(token)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert service.verify(token) == identity
    assert identity == Identity(
        "alice", "Alice", "admin", None, "meshgate", int(NOW) + 3600, "meshgate"
    )
    user_token, user = service.issue("bob", "", "user", "acme")
    assert service.verify(user_token) == user
    assert (user.name, user.tenant, user.role) == ("bob", "acme", "user")


def test_issue_needs_a_secret_and_valid_arguments() -> None:
    with pytest.raises(RuntimeError):
        TokenService(None).issue("alice", "Alice", "admin", None)
    service = TokenService(SECRET, clock=clock)
    with pytest.raises(ValueError):
        service.issue("bob", "Bob", "user", None)
    with pytest.raises(ValueError):
        service.issue("bob", "Bob", "root", "acme")
    with pytest.raises(ValueError):
        TokenService("too-short")


def test_idp_rs256_and_es256_with_kid(idp: TokenService, keys: dict[str, Any]) -> None:
    rs = idp.verify(idp_token(keys))
    assert rs == Identity("u-42", "Bob", "user", "acme", IDP_ISS, int(NOW) + 600, "idp")
    es = idp.verify(idp_token(keys, kid="ec-1", alg="ES256", name=None, role="admin"))
    assert (es.role, es.name, es.source) == ("admin", "u-42", "idp")


def test_role_mapping_nested_list_claim(tmp_path: Path, keys: dict[str, Any]) -> None:
    service = idp_service(
        tmp_path,
        {"keys": [jwk(keys["rsa"], "rsa-1")]},
        role_claim="realm_access.roles",
        admin_values=("admin", "gateway-admin"),
        tenant_claim="org.id",
    )
    admin = idp_token(keys, role=None, tenant=None, realm_access={"roles": ["x", "gateway-admin"]})
    assert service.verify(admin).role == "admin"
    assert service.verify(admin).tenant is None
    user = idp_token(keys, role=None, realm_access={"roles": ["x"]}, org={"id": "acme"})
    assert (service.verify(user).role, service.verify(user).tenant) == ("user", "acme")
    missing = idp_token(keys, role=None, org={"id": "acme"})
    assert service.verify(missing).role == "user"


def test_role_claim_with_dots_in_its_name(tmp_path: Path, keys: dict[str, Any]) -> None:
    service = idp_service(
        tmp_path, {"keys": [jwk(keys["rsa"], "rsa-1")]}, role_claim="https://ex.com/roles"
    )
    token = idp_token(keys, tenant=None, **{"https://ex.com/roles": ["admin"]})
    assert service.verify(token).role == "admin"


def test_tenant_required_for_users(idp: TokenService, keys: dict[str, Any]) -> None:
    refused(idp, idp_token(keys, tenant=None), "token has no tenant")
    refused(idp, idp_token(keys, tenant=""), "token has no tenant")
    assert idp.verify(idp_token(keys, role="admin", tenant=None)).tenant is None
    own = TokenService(SECRET, clock=clock)
    forged = jwt.encode(
        {"iss": "meshgate", "aud": "meshgate", "sub": "b", "role": "user", "iat": 1, "exp": 2**40},
        SECRET,
        algorithm="HS256",
    )
    refused(own, forged, "token has no tenant")


def test_token_without_kid_needs_exactly_one_suitable_key(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    one = idp_service(tmp_path, {"keys": [jwk(keys["rsa"], "rsa-1"), jwk(keys["ec"], "ec-1")]})
    assert one.verify(idp_token(keys, kid=None)).subject == "u-42"
    two = idp_service(
        tmp_path, {"keys": [jwk(keys["rsa"], "rsa-1"), jwk(keys["rsa_other"], "rsa-2")]}
    )
    refused(two, idp_token(keys, kid=None), "no key id")


def test_leeway_applies_to_exp_and_nbf(idp: TokenService, keys: dict[str, Any]) -> None:
    assert idp.verify(idp_token(keys, exp=int(NOW) - 10)).subject == "u-42"
    assert idp.verify(idp_token(keys, nbf=int(NOW) + 10)).subject == "u-42"


# --- negative ---------------------------------------------------------------


def test_alg_none_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    own = claims(iss="meshgate", aud="meshgate", role="admin")
    refused(idp, craft({"alg": "none", "typ": "JWT"}, own), "algorithm")
    refused(idp, craft({"alg": "none", "kid": "rsa-1"}, claims()), "algorithm")
    refused(idp, craft({"alg": "None", "kid": "rsa-1"}, claims()), "algorithm")
    refused(idp, craft({"typ": "JWT"}, claims()), "no algorithm")


def test_hs256_signed_with_rsa_public_key_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    pem = (
        keys["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for payload, match in (
        (claims(role="admin"), "algorithm not allowed"),  # IdP issuer: only RS/ES allowed
        (claims(iss="meshgate", aud="meshgate", role="admin"), "signature"),  # ours: our secret
    ):
        header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
        head = b64url(json.dumps(header).encode())
        body = b64url(json.dumps(payload).encode())
        mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        refused(idp, f"{head}.{body}.{b64url(mac)}", match)


def test_idp_settings_refuse_symmetric_algorithms() -> None:
    with pytest.raises(ValueError):
        IdpSettings(jwks_file="x", issuer=IDP_ISS, audience=IDP_AUD, algorithms=("HS256",))
    with pytest.raises(ValueError):
        IdpSettings(jwks_file="x", issuer="", audience=IDP_AUD)
    with pytest.raises(ValueError):
        IdpSettings(jwks_file="x", jwks_url="https://x", issuer=IDP_ISS, audience=IDP_AUD)


def test_expired_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    refused(idp, idp_token(keys, exp=int(NOW) - 31), "token expired")
    own = TokenService(SECRET, clock=clock)
    token, _ = own.issue("alice", "Alice", "admin", None)
    later = TokenService(SECRET, clock=lambda: NOW + 3600 + 31)
    refused(later, token, "token expired")


def test_nbf_in_future_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    refused(idp, idp_token(keys, nbf=int(NOW) + 120), "not yet valid")
    refused(idp, idp_token(keys, iat=int(NOW) + 120), "in the future")


def test_wrong_issuer_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    refused(idp, idp_token(keys, iss="https://evil.example.com"), "wrong token issuer")
    own_only = TokenService(SECRET, clock=clock)
    refused(own_only, idp_token(keys), "issuer not accepted")
    foreign = jwt.encode(claims(iss="other-gateway"), SECRET, algorithm="HS256")
    refused(own_only, foreign, "issuer not accepted")


def test_wrong_audience_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    refused(idp, idp_token(keys, aud="someone-else"), "wrong token audience")
    other = TokenService(SECRET, audience="other", clock=clock)
    token, _ = other.issue("alice", "Alice", "admin", None)
    refused(TokenService(SECRET, clock=clock), token, "wrong token audience")


def test_tampered_payload_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    own = TokenService(SECRET, clock=clock)
    for service, token in ((idp, idp_token(keys)), (own, own.issue("b", "B", "user", "acme")[0])):
        head, body, sig = token.split(".")
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        payload["role"] = "admin"
        forged = f"{head}.{b64url(json.dumps(payload).encode())}.{sig}"
        refused(service, forged, "invalid token signature")


def test_signature_by_another_key_with_same_kid_refused(
    idp: TokenService, keys: dict[str, Any]
) -> None:
    refused(idp, idp_token(keys, signer="rsa_other"), "invalid token signature")
    other_secret = TokenService("another-secret-0123456789-abcdefghij", clock=clock)
    refused(idp, other_secret.issue("alice", "Alice", "admin", None)[0], "invalid token signature")


def test_unknown_kid_refused_and_flagged(idp: TokenService, keys: dict[str, Any]) -> None:
    assert not idp.unknown_kid_seen
    refused(idp, idp_token(keys, kid="rotated-away"), "unknown key id")
    assert idp.unknown_kid_seen
    refused(idp, idp_token(keys, kid="ec-1"), "does not match")  # RS256 token, EC key


def test_missing_required_claims_refused(idp: TokenService, keys: dict[str, Any]) -> None:
    refused(idp, idp_token(keys, exp=None), "no exp claim")
    refused(idp, idp_token(keys, sub=None), "no sub claim")
    refused(idp, idp_token(keys, aud=None), "no aud claim")
    refused(idp, idp_token(keys, exp="tomorrow"), "invalid")
    own_claims = {"iss": "meshgate", "aud": "meshgate", "sub": "a", "role": "admin"}
    no_iat = jwt.encode({**own_claims, "exp": int(NOW) + 60}, SECRET, algorithm="HS256")
    refused(idp, no_iat, "no iat claim")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "..",
        "eyJ.eyJ.",
        "Bearer abc.def.ghi",
        "ééé.ééé.ééé",
        "e30.e30.",  # {} . {} . (no alg)
        b64url(b"[1]") + "." + b64url(b"[2]") + ".sig",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b"not json") + ".sig",
    ],
)
def test_garbage_refused(idp: TokenService, token: str) -> None:
    refused(idp, token)


def test_random_10kb_text_refused(idp: TokenService) -> None:
    rng = random.Random(7)
    text = "".join(rng.choice(string.printable) for _ in range(10 * 1024))
    refused(idp, text, "malformed")
    shaped = ".".join("".join(rng.choice(string.ascii_letters) for _ in range(6000)) for _ in "abc")
    refused(idp, shaped, "too large")
    assert not idp.looks_like_jwt(shaped)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_verify_only_ever_raises_token_error(text: str) -> None:
    service = TokenService(SECRET, clock=clock)
    with pytest.raises(TokenError):
        service.verify(text)


def test_looks_like_jwt() -> None:
    service = TokenService(None)
    assert service.looks_like_jwt("eyJh.eyJi.c2ln")
    assert service.looks_like_jwt("eyJh.eyJi.")
    for text in ("sk-abcdef", "a.b", "a..c", "a.b.c.d", "a b.c.d", "a.b.c\n"):
        assert not service.looks_like_jwt(text)


# --- JWKS loading -----------------------------------------------------------


def test_jwks_parse_drops_unsafe_keys(keys: dict[str, Any]) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_ec = jwt.algorithms.ECAlgorithm.to_jwk(keys["ec"], as_dict=True)
    skipped: list[str] = []
    parsed = parse_jwks(
        {
            "keys": [
                {"kty": "oct", "kid": "hmac", "k": b64url(b"x" * 32)},
                jwk(keys["rsa"], "enc", use="enc"),
                jwk(small, "small"),
                {**private_ec, "kid": "ec-private"},
                "not an object",
                jwk(keys["rsa"], "good"),
            ]
        },
        skipped,
    )
    assert [key.kid for key in parsed] == ["ec-private", "good"]
    assert isinstance(parsed[0].key, ec.EllipticCurvePublicKey)
    assert len(skipped) == 4
    with pytest.raises(JwksError):
        parse_jwks("{not json")
    with pytest.raises(JwksError):
        parse_jwks({"keys": [{"kty": "oct", "k": "AAAA"}]})


def test_jwks_file_refresh_keeps_last_good_set(tmp_path: Path, keys: dict[str, Any]) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(keys["rsa"], "rsa-1")]}))
    cache = JwksCache(file=str(path), clock=clock)
    assert asyncio.run(cache.refresh())
    assert cache.loaded_at == NOW and [k.kid for k in cache.keys] == ["rsa-1"]
    path.write_text("{broken")
    assert not asyncio.run(cache.refresh())
    assert cache.last_error == "JWKS is not valid JSON"
    assert [k.kid for k in cache.keys] == ["rsa-1"]
    missing = JwksCache(file=str(tmp_path / "absent.json"))
    assert not asyncio.run(missing.refresh())
    assert missing.last_error and "cannot read" in missing.last_error and not missing.keys


def test_idp_tokens_refused_before_keys_load(tmp_path: Path, keys: dict[str, Any]) -> None:
    idp = IdpSettings(jwks_file=str(tmp_path / "absent"), issuer=IDP_ISS, audience=IDP_AUD)
    service = TokenService(None, idp=idp, clock=clock)
    asyncio.run(service.refresh())
    assert service.jwks is not None and service.jwks.last_error
    refused(service, idp_token(keys), "not loaded")


def test_jwks_url_refresh_and_rotation(keys: dict[str, Any]) -> None:
    state: dict[str, Any] = {"status": 200, "jwks": {"keys": [jwk(keys["rsa"], "rsa-1")]}}

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(state["jwks"], status=state["status"])

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/jwks", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            idp = IdpSettings(
                jwks_url=f"http://127.0.0.1:{port}/jwks", issuer=IDP_ISS, audience=IDP_AUD
            )
            service = TokenService(None, idp=idp, clock=clock)
            await service.refresh()
            assert service.jwks is not None and service.jwks.last_error is None
            assert service.verify(idp_token(keys)).subject == "u-42"
            refused(service, idp_token(keys, kid="ec-1", alg="ES256"), "unknown key id")
            assert service.unknown_kid_seen

            state["status"] = 500
            await service.refresh()
            assert service.jwks.last_error == "JWKS URL answered HTTP 500"
            assert service.verify(idp_token(keys)).subject == "u-42"  # last good set kept

            state["status"] = 200
            state["jwks"] = {"keys": [jwk(keys["ec"], "ec-1")]}
            await service.refresh()
            assert service.jwks.last_error is None and not service.unknown_kid_seen
            assert service.verify(idp_token(keys, kid="ec-1", alg="ES256")).subject == "u-42"
            refused(service, idp_token(keys), "unknown key id")
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_jwks_url_must_be_http() -> None:
    with pytest.raises(ValueError):
        JwksCache(url="file:///etc/passwd")
    with pytest.raises(ValueError):
        JwksCache()
