"""Unit tests of API-key and control-plane-key checks (`node/auth.py`)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from node.auth import ANONYMOUS, Authenticator, Principal, digest, presented_token
from node.errors import ApiError

API_KEY = "api-key-plaintext-123"
ADMIN_KEY = "admin-key-plaintext-456"
USER_KEY = "user:key:with:colons-789"
ADMIN_SPEC = f"k1:alice:admin:{ADMIN_KEY}"
USER_SPEC = f"k2:bob:user:{USER_KEY}"


def request(**headers: str) -> web.Request:
    return make_mocked_request("GET", "/v1/models", headers=headers)


def bearer(token: str) -> web.Request:
    return request(Authorization=f"Bearer {token}")


def full() -> Authenticator:
    return Authenticator(API_KEY, [ADMIN_SPEC, USER_SPEC])


# --- identify --------------------------------------------------------------------------------


def test_identify_api_key() -> None:
    principal = full().identify(API_KEY)
    assert principal is not None
    assert principal.kind == "api_key"
    assert principal.role == "user"


def test_identify_control_plane_keys_keep_their_role() -> None:
    auth = full()
    assert auth.identify(ADMIN_KEY) == Principal("k1", "alice", "admin", "control_plane_key")
    assert auth.identify(USER_KEY) == Principal("k2", "bob", "user", "control_plane_key")


@pytest.mark.parametrize(
    "token", [None, "", "nope", API_KEY + "x", API_KEY[:-1], ADMIN_SPEC, "alice", "k1"]
)
def test_identify_rejects_unknown_tokens(token: str | None) -> None:
    assert full().identify(token) is None


def test_identify_with_nothing_configured() -> None:
    auth = Authenticator(None, [])
    assert not auth.configured
    assert auth.identify(API_KEY) is None
    assert auth.identify("") is None
    assert not Authenticator("", []).configured  # an empty key is no key


def test_no_plaintext_key_is_stored() -> None:
    auth = full()
    secrets = [API_KEY, ADMIN_KEY, USER_KEY]
    seen: list[Any] = []

    def walk(value: Any, depth: int = 0) -> None:
        assert depth < 20
        if isinstance(value, str | bytes | bytearray):
            seen.append(value)
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, depth + 1)
                walk(v, depth + 1)
            return
        if isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item, depth + 1)
            return
        if hasattr(value, "__dict__"):
            walk(vars(value), depth + 1)
        for slot in getattr(type(value), "__slots__", ()):
            if hasattr(value, slot):
                walk(getattr(value, slot), depth + 1)

    walk(auth)
    assert seen, "the walk found nothing to inspect"
    for stored in seen:
        for secret in secrets:
            raw = secret.encode()
            haystack = stored if isinstance(stored, bytes | bytearray) else stored.encode()
            assert raw not in haystack, f"plaintext key stored: {stored!r}"
    # What is stored instead: the SHA-256 digests.
    assert digest(API_KEY) in seen and digest(ADMIN_KEY) in seen and digest(USER_KEY) in seen


# --- presented_token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"Authorization": "bearer abc"}, "abc"),
        ({"Authorization": "BEARER   abc  "}, "abc"),
        ({"X-API-Key": "xyz"}, "xyz"),
        ({"x-api-key": "xyz"}, "xyz"),
        ({"Authorization": "Bearer abc", "X-API-Key": "xyz"}, "abc"),
        ({"Authorization": "Basic abc"}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Bearer"}, None),
        ({"X-API-Key": ""}, None),
        ({}, None),
    ],
)
def test_presented_token(headers: dict[str, str], token: str | None) -> None:
    assert presented_token(request(**headers)) == token


# --- control_plane ------------------------------------------------------------------------------


def test_control_plane_without_key_is_401() -> None:
    with pytest.raises(ApiError) as caught:
        full().control_plane(request())
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["wrong", API_KEY])
def test_control_plane_refuses_non_control_keys_when_such_keys_exist(token: str) -> None:
    with pytest.raises(ApiError) as caught:
        full().control_plane(bearer(token))
    assert caught.value.status == 401


def test_control_plane_user_key_is_403() -> None:
    with pytest.raises(ApiError) as caught:
        full().control_plane(bearer(USER_KEY))
    assert caught.value.status == 403
    assert caught.value.code == "FORBIDDEN"
    assert "k2" in caught.value.message and "admin" in caught.value.message
    assert USER_KEY not in caught.value.message


def test_control_plane_admin_key_is_the_principal() -> None:
    principal = full().control_plane(bearer(ADMIN_KEY))
    assert principal == Principal("k1", "alice", "admin", "control_plane_key")
    assert full().control_plane(request(**{"X-API-Key": ADMIN_KEY})).id == "k1"


def test_control_plane_with_only_an_api_key() -> None:
    auth = Authenticator(API_KEY, [])
    assert auth.control_plane(bearer(API_KEY)).kind == "api_key"
    for req in (request(), bearer("wrong")):
        with pytest.raises(ApiError) as caught:
            auth.control_plane(req)
        assert caught.value.status == 401
        assert "WWW-Authenticate" in caught.value.headers


def test_nothing_configured_is_anonymous() -> None:
    auth = Authenticator(None, [])
    assert auth.control_plane(request()) is ANONYMOUS
    assert auth.protected(request()) is ANONYMOUS
    assert auth.protected(bearer("anything")) is ANONYMOUS
    assert ANONYMOUS.kind == "anonymous"


# --- protected ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "kind", "role"),
    [
        (API_KEY, "api_key", "user"),
        (ADMIN_KEY, "control_plane_key", "admin"),
        (USER_KEY, "control_plane_key", "user"),
    ],
)
def test_protected_accepts_api_and_control_plane_keys(token: str, kind: str, role: str) -> None:
    principal = full().protected(bearer(token))
    assert (principal.kind, principal.role) == (kind, role)


def test_protected_with_only_control_plane_keys() -> None:
    auth = Authenticator(None, [USER_SPEC])
    assert auth.protected(bearer(USER_KEY)).id == "k2"
    with pytest.raises(ApiError) as caught:
        auth.protected(request())
    assert caught.value.status == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"X-API-Key": "no"}])
def test_protected_refuses_others_with_401(headers: dict[str, str]) -> None:
    with pytest.raises(ApiError) as caught:
        full().protected(request(**headers))
    err = caught.value
    assert err.status == 401
    assert err.code == "UNAUTHORIZED"
    assert err.headers == {"WWW-Authenticate": 'Bearer realm="meshgate"'}
    assert "Authorization: Bearer" in err.message
    response = err.response()
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="meshgate"'


class KeyStore:
    """The replicated state's keys, as Authenticator reads them: one key's record."""

    auth_required = True
    token_versions: dict[str, int] = {}

    def __init__(self, record: dict[str, Any]) -> None:
        self.api_keys = {record["id"]: record}
        self.key_hashes = {record["hash"]: record["id"]}


def test_a_managed_keys_principal_follows_its_record() -> None:
    token = "mg-managed-key-plaintext"
    record = {"id": "key1", "name": "k", "role": "user", "status": "active"}
    record["hash"] = digest(token).hex()
    store = KeyStore(record)
    auth = Authenticator(None, [], keys=lambda: store)
    first = auth.identify(token)
    assert first == Principal("key1", "k", "user", "managed_key", None, record)
    assert auth.identify(token) is first  # made once while its record stays
    store.api_keys = {"key1": {**record, "role": "admin", "tenant": "t1"}}  # a new version
    assert auth.identify(token) == Principal(
        "key1", "k", "admin", "managed_key", "t1", store.api_keys["key1"]
    )
    store.api_keys = {"key1": {**record, "status": "revoked"}}
    assert auth.identify(token) is None


def test_a_managed_keys_cached_principal_stops_at_its_expiry() -> None:
    """Its record does not change when a key expires, so the principal made for it must
    not outlive the expiry (node/auth.py asks the expiry before its cache)."""

    token = "mg-expiring-key-plaintext"
    record = {"id": "key2", "name": "k", "role": "user", "status": "active", "expires_at": 100.0}
    record["hash"] = digest(token).hex()
    now = [99.0]
    auth = Authenticator(None, [], keys=lambda: KeyStore(record), clock=lambda: now[0])
    first = auth.identify(token)
    assert first is not None and auth.identify(token) is first  # cached while it holds
    now[0] = 100.0  # the same record, at its expiry
    assert auth.identify(token) is None
