"""Who is calling: keys and tokens, checked per route group.

Credentials, in the order they are tried:
- a JWT (three dot-separated segments): HS256 ones meshgate issued at
  `POST /api/admin/login`, or RS256/ES256 ones from the identity provider;
- the static `--api-key` and `--control-plane-api-keys` (id:name:role:key);
- managed API keys, which live in the replicated state as SHA-256 digests only
  (a revoked or rotated key stops working on every node as soon as the
  command is applied).

Route groups (seed 001):
- public: no credentials.
- protected (the inference API): any valid credential, once any is
  configured; open only when none is (which the config allows on loopback).
- control plane: an admin (a control-plane key with role admin, an admin
  managed key, an admin token); with only `--api-key` configured, that key.
- management (`/api`, `/ws`): any valid credential; handlers scope users to
  their tenant.
- a published model's external path: any valid credential, and the only
  place a publication key (`pk_live_…`) is valid at all.

A node cut off from the mesh leader (`RaftStatus.stale`) cannot vouch that a
managed key or a meshgate token was not revoked since it last heard from the
leader, so it answers 503 for those until it is back (`cut_off`); static keys
and identity-provider tokens, which the replicated state cannot revoke, still
work (docs/security.md).

"Configured" outlives the credentials: once a static credential has guarded
the mesh or the first managed key was made, the replicated state records it
(`auth_required`), and revoking every key never reopens the mesh.

Static keys are compared with `hmac.compare_digest` against every configured
digest, so neither timing nor logs reveal a key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from node.errors import ApiError
from node.identity.claims import TokenError

if TYPE_CHECKING:  # built by the node only when tokens are on (node.app.token_service)
    from node.identity.tokens import TokenService


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    name: str
    role: str  # admin | user
    kind: str  # api_key | control_plane_key | managed_key | jwt (ours) | idp_token | anonymous
    # | open_publication
    tenant: str | None = None  # a user's tenant; admins act across tenants
    key: dict[str, Any] | None = None  # the managed key record, for per-key limits

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_mint(self) -> bool:
        """May create API keys (admins anywhere; minters within their tenant)."""
        return self.role in ("admin", "minter") and self.publication is None

    @property
    def publication(self) -> str | None:
        """The publication ("tenant/name") a publication key belongs to, else None."""
        return self.key.get("published_model") if self.key is not None else None


ANONYMOUS = Principal("anonymous", "anonymous", "admin", "anonymous")
MAX_CACHED_PRINCIPALS = 10_000  # managed keys' principals kept; past it, all made again
OPEN_CALLER = "open_publication"  # the kind of a caller of a publication without a key


def open_publication_caller(address: str) -> Principal:
    """Who calls a publication its admin opened (`requireApiKey: false`) without a
    credential: known only by client address, which its limits are counted by."""
    return Principal(f"client:{address}", f"client {address}", "user", OPEN_CALLER)


# Where a route's guard leaves the caller on the request (read by the audit log).
PRINCIPAL = web.RequestKey("principal", Principal)


class KeyStore(Protocol):
    """What authentication reads from the replicated state (`mesh.state.ControlState`)."""

    key_hashes: dict[str, str]
    api_keys: dict[str, dict[str, Any]]
    auth_required: bool
    token_versions: dict[str, int]


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("X-API-Key") or None


class Authenticator:
    def __init__(
        self,
        api_key: str | None,
        control_plane_keys: list[str],
        tokens: TokenService | None = None,
        keys: Callable[[], KeyStore] | None = None,
        clock: Callable[[], float] = time.time,
        loaded: Callable[[], bool] | None = None,
        cut_off: Callable[[], bool] = lambda: False,
    ) -> None:
        self._api_key = digest(api_key) if api_key else None
        self._control: list[tuple[Principal, bytes]] = []
        for spec in control_plane_keys:
            key_id, name, role, key = spec.split(":", 3)
            self._control.append((Principal(key_id, name, role, "control_plane_key"), digest(key)))
        self.tokens = tokens
        self._keys = keys
        self._clock = clock
        # Has this node loaded its replicated state? Until then an empty replica cannot
        # tell "never guarded" from "not replayed yet", so nobody is let in anonymously.
        self._loaded = loaded
        self._cut_off = cut_off
        # With nothing else to guard the control plane, the API key does. Its principal is
        # made once: a frozen dataclass costs some 2 µs to build, on every request.
        role = "user" if (self._control or tokens) else "admin"
        self._api_key_principal = Principal("api-key", "api-key", role, "api_key")
        self._principals: dict[str, tuple[dict[str, Any], Principal]] = {}  # managed keys'

    @property
    def static(self) -> bool:
        """Does this node's own configuration hold a credential?"""
        return self._api_key is not None or bool(self._control) or self.tokens is not None

    @property
    def configured(self) -> bool:
        """Must callers authenticate? Yes once any credential has ever guarded the mesh."""
        if self.static:
            return True
        if self._keys is None:
            return False
        store = self._keys()
        return bool(store.auth_required or store.api_keys)

    def identify(self, token: str | None) -> Principal | None:
        """The principal a credential belongs to, or None. A bad JWT says why (401)."""
        if not token:
            return None
        if self.tokens is not None and self.tokens.looks_like_jwt(token):
            try:
                who = self.tokens.verify(token)
            except TokenError as exc:
                raise _unauthorized(f"invalid token ({exc})") from None
            if who.source == "meshgate" and self._keys is not None:
                revoked_before = self._keys().token_versions.get(who.subject, 0)
                if who.version < revoked_before:
                    raise _unauthorized("invalid token (revoked)")
                self._vouch("token")
            if who.source == "idp":  # its own namespace: an IdP subject is not our user
                return Principal(f"idp:{who.subject}", who.name, who.role, "idp_token", who.tenant)
            return Principal(f"jwt:{who.subject}", who.name, who.role, "jwt", who.tenant)
        presented = digest(token)
        found: Principal | None = None
        if self._api_key is not None and hmac.compare_digest(presented, self._api_key):
            found = self._api_key_principal
        for principal, key in self._control:
            if hmac.compare_digest(presented, key):
                found = principal
        if found is None and self._keys is not None:
            found = self._managed(presented.hex())
            if found is not None:
                self._vouch("API key")
        return found

    def _vouch(self, what: str) -> None:
        """Revocable credentials need a replica known to be current."""
        if self._cut_off():
            raise ApiError(
                503,
                f"this node is cut off from the mesh leader and cannot vouch that the {what} "
                "was not revoked; retry shortly, or through another node",
                code="CUT_OFF_FROM_LEADER",
                headers={"Retry-After": "1"},
            )

    def _managed(self, hex_digest: str) -> Principal | None:
        if self._keys is None:
            return None
        store = self._keys()
        record = store.api_keys.get(store.key_hashes.get(hex_digest, ""))
        if record is None or not hmac.compare_digest(record["hash"], hex_digest):
            return None
        expires = record.get("expires_at")
        if record["status"] != "active" or (expires is not None and expires <= self._clock()):
            return None
        # A key's principal is made once per version of its record (the state replaces a
        # record it changes; the cache holds it, so `is` cannot match a new one).
        made = self._principals.get(hex_digest)
        if made is not None and made[0] is record:
            return made[1]
        if len(self._principals) >= MAX_CACHED_PRINCIPALS:
            self._principals.clear()
        tenant = record.get("tenant")
        principal = Principal(
            record["id"], record["name"], record["role"], "managed_key", tenant, record
        )
        self._principals[hex_digest] = (record, principal)
        return principal

    def open_door(self) -> Principal | None:
        """ANONYMOUS when callers need no credential, None when they do. A node that has not
        loaded its state yet answers 503 rather than guess (it would guess "open")."""
        if self.configured:
            return None
        if self._loaded is not None and not self._loaded():
            raise ApiError(
                503,
                "this node is still loading its state; retry shortly",
                headers={"Retry-After": "1"},
            )
        return ANONYMOUS

    def published(self, request: web.Request) -> Principal:
        """Any valid credential, publication keys included (a published model's own path;
        the handler checks that a publication key is this publication's)."""
        if (anonymous := self.open_door()) is not None:
            return anonymous
        principal = self.identify(presented_token(request))
        if principal is None:
            raise _unauthorized("this route needs an API key or a bearer token")
        return principal

    def caller(self, request: web.Request) -> Principal | None:
        """Who calls a public route, if their credential says. It can only narrow what the
        route shows (a key's models), so a credential that names nobody is no error."""
        try:
            return self.identify(presented_token(request))
        except ApiError:  # a bad token, or a node that cannot vouch: the anonymous view
            return None

    def authenticated(self, request: web.Request) -> Principal:
        """Any valid credential but a publication key (the management API, inference);
        anonymous only when none is configured."""
        principal = self.published(request)
        refuse_publication_key(principal, request.path)
        return principal

    def protected(self, request: web.Request) -> Principal:
        return self.authenticated(request)

    def control_plane(self, request: web.Request) -> Principal:
        if (anonymous := self.open_door()) is not None:
            return anonymous
        principal = self.identify(presented_token(request))
        if principal is None:
            raise _unauthorized("this control-plane route needs an admin credential")
        refuse_publication_key(principal, request.path)
        if principal.role != "admin":
            if principal.kind == "api_key":
                raise _unauthorized(
                    "this control-plane route needs an admin credential, not the client API key"
                )
            raise ApiError(
                403,
                f"{principal.kind.replace('_', ' ')} {principal.id!r} has role "
                f"{principal.role}; admin is required",
            )
        return principal


def refuse_publication_key(principal: Principal, path: str) -> None:
    """A publication key is valid only on its publication's external path (403 elsewhere)."""
    if principal.publication is not None:
        raise ApiError(
            403,
            f"a publication key is valid only on its published model's external path "
            f"(/models/<name>/...), not on {path}",
        )


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        f"{message}: send 'Authorization: Bearer <key or token>'",
        headers={"WWW-Authenticate": 'Bearer realm="meshgate"'},
    )
