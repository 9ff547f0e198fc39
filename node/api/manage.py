"""The management API (seed 002, under /api): login, tenants, the mesh, managed API keys.

Every change is a Raft command, so a key created, rotated or revoked through
one node is in force on every node as soon as the command is acknowledged.
Non-admins see and change only their own tenant's objects (403 otherwise);
admins act across tenants with `?namespace=` or a `tenantId`/`namespace` field.
A key is shown in full exactly once, when it is created or rotated; the
replicated state holds only its SHA-256 digest.

Who may make and manage keys: admins anywhere; in a tenant, a credential with
role `minter`. A key minted by another key records it as its parent, may be no
wider than it (models, limits, expiry) and is revoked with it; a key may
rotate or revoke only itself and the keys minted from it. Every non-admin
caller of `/api` has a per-user request limit (seed 002: 100 a minute, burst
10), with `X-RateLimit-*` headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import math
import re
import secrets
import time
import uuid
from typing import Annotated, Any, Final, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from mesh.state import KEY_ROLES
from node import __version__
from node.api.bodies import ApiBody, read_body, whole
from node.api.common import client_address, json_response, node_of
from node.api.table import COMMIT, Audience, Query, Route
from node.app import Node
from node.audit import AUDIT
from node.auth import Principal
from node.errors import ApiError
from node.ha.report import mesh_status
from node.identity.passwords import parse_admin_credential, verify_password
from node.limits.quotas import Limits

NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # use with fullmatch
Name = Annotated[
    str, Meta(pattern=whole(NAME.pattern), description="1-63 lowercase letters, digits or '-'")
]
# Quotas in snake_case or camelCase (node.limits.quotas.Limits.from_dict checks them).
LIMITS_SCHEMA = Meta(extra_json_schema={"$ref": "#/components/schemas/Limits"})
LimitsField = Annotated[Any, LIMITS_SCHEMA]
# verify_password is called even for an unknown user, so timing does not reveal usernames.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


# -- tenancy helpers (shared with the models API) ---------------------------------------------


def scope_tenant(node: Node, principal: Principal, requested: Any) -> str:
    """The tenant a request acts on: a user's own, or (admins) the one they name."""
    if requested is not None and not isinstance(requested, str):
        raise ApiError(400, "namespace/tenantId must be a string")
    if not principal.is_admin:
        if requested and requested != principal.tenant:
            raise ApiError(403, f"Insufficient permissions for tenant: {requested}")
        if not principal.tenant:
            raise ApiError(403, "this credential is not bound to a tenant")
        return principal.tenant
    tenant = requested or principal.tenant
    if not tenant:
        raise ApiError(400, "admins must name the tenant (?namespace= or tenantId)")
    if tenant not in node.raft.state.tenants:
        raise ApiError(404, f"tenant {tenant} not found")
    return tenant


def visible_tenants(node: Node, principal: Principal, requested: str | None) -> set[str] | None:
    """Tenants whose objects a listing may show; None means all (an admin without a filter)."""
    if principal.is_admin:
        return {requested} if requested else None
    return {scope_tenant(node, principal, requested)}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def new_secret(prefix: str) -> tuple[str, str, str]:
    """A fresh key: (the key, its display prefix, its SHA-256 hex digest)."""
    key = prefix + secrets.token_urlsafe(32)
    return key, key[: len(prefix) + 6], hashlib.sha256(key.encode()).hexdigest()


def parse_limits(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "limits must be an object", param="limits")
    try:
        limits = Limits.from_dict(value)
    except ValueError as exc:
        raise ApiError(400, f"limits: {exc}", param="limits") from None
    return {k: v for k, v in dataclasses.asdict(limits).items() if v is not None}


# -- login, tenants, the mesh --------------------------------------------------------------------


class Login(msgspec.Struct):  # open, as seed 002 has it: a client may send more fields
    username: Annotated[str, Meta(min_length=1, max_length=256, description="1-256 characters")]
    password: Annotated[str, Meta(max_length=1024, description="at most 1024 characters")]


async def login(request: web.Request) -> web.Response:
    """Admin login. scrypt runs off the event loop, at most two at a time, and failures
    throttle further tries per username and per client address (429 with Retry-After)."""
    node = node_of(request)
    body = await read_body(request, Login)
    username, password = body.username, body.password
    if node.tokens is None or not node.config.admin_credentials:
        raise ApiError(401, "admin login is not configured on this mesh (--admin-credentials)")
    address = client_address(request, node.config.forwarded_allow_ips)
    wait = node.login_throttle.retry_after(username, address)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise ApiError(
            429,
            f"too many failed logins; retry after {retry_after}s",
            code="login_throttled",
            headers={"Retry-After": str(retry_after)},
        )
    stored = _DUMMY_HASH
    found = False
    for spec in node.config.admin_credentials:
        name, encoded = parse_admin_credential(spec)
        if hmac.compare_digest(name.encode(), username.encode()):
            stored, found = encoded, True
    # Charged before the (slow) check, so parallel guesses all count; a success clears it.
    node.login_throttle.failed(username, address)
    async with node.login_slots:
        loop = asyncio.get_running_loop()
        matched = await loop.run_in_executor(None, verify_password, password, stored)
    if not (matched and found):
        raise ApiError(401, "Authentication required: wrong username or password")
    node.login_throttle.succeeded(username, address)
    version = node.raft.state.token_versions.get(username, 0)
    token, who = node.tokens.issue(username, "Administrator", "admin", None, version)
    return json_response(
        {
            "token": token,
            "user": {
                "tenant": "admin",
                "name": who.name,
                "subject": who.subject,
                "issuer": who.issuer,
                "isAdmin": True,
                "exp": who.expires_at,
            },
        }
    )


async def logout(request: web.Request, principal: Principal) -> web.Response:
    """Revoke every token meshgate issued to the caller (sign out everywhere)."""
    if principal.kind != "jwt":  # identity-provider tokens are revoked at the provider
        raise ApiError(403, "logout ends sessions of tokens meshgate issued; this is not one")
    subject = principal.id.removeprefix("jwt:")
    await node_of(request).commit("token.revoke", {"subject": subject}, principal)
    return json_response({"message": "Signed out: every token issued to you is revoked"})


async def revoke_tokens(request: web.Request, principal: Principal) -> web.Response:
    """Revoke every token meshgate issued to a user so far (a lost laptop, a leaver)."""
    username = request.match_info["username"]
    await node_of(request).commit("token.revoke", {"subject": username}, principal)
    return json_response({"message": f"every token issued to {username} so far is revoked"})


def _tenant_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": record["name"],
        "status": record["status"],
        "created": iso(record["created_at"]),
        "description": record.get("description"),
        "limits": record.get("limits", {}),
    }


async def list_tenants(request: web.Request, _: Principal) -> web.Response:
    tenants = node_of(request).raft.state.tenants
    return json_response({"tenants": [_tenant_view(tenants[k]) for k in sorted(tenants)]})


class TenantCreate(ApiBody):
    name: Name
    description: str | None = None
    limits: LimitsField = None


async def create_tenant(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    body = await read_body(request, TenantCreate)
    name = body.name
    limits = parse_limits(body.limits)
    args = {"name": name, "description": body.description, "limits": limits}
    await node.commit("tenant.create", args, principal)
    return json_response(
        {
            "message": "Tenant created successfully",
            "tenant": _tenant_view(node.raft.state.tenants[name]),
        },
        status=201,
    )


async def delete_tenant(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    await node.commit("tenant.delete", {"name": request.match_info["name"]}, principal)
    return json_response({"message": "Tenant deleted successfully"})


async def system(request: web.Request, _: Principal) -> web.Response:
    """The mesh in place of Kubernetes objects: nodes, roles, health, versions, model counts."""
    node = node_of(request)
    status = mesh_status(node)
    state = node.raft.state
    counts: dict[str, dict[str, int]] = {
        t: {"models": 0, "publishedModels": 0, "apiKeys": 0} for t in state.tenants
    }
    for model in state.models.values():
        counts.setdefault(model["tenant"], {"models": 0, "publishedModels": 0, "apiKeys": 0})
        counts[model["tenant"]]["models"] += 1
    for ref in state.published:
        counts[ref.split("/", 1)[0]]["publishedModels"] += 1
    for key in state.api_keys.values():
        if key["status"] == "active" and key.get("tenant") in counts:
            counts[key["tenant"]]["apiKeys"] += 1
    return json_response(
        {
            "nodes": [
                {
                    "name": n["name"],
                    "status": n["status"],
                    "role": n["role"],
                    "ready": n["ready"],
                    "version": n["version"],
                    "httpUrl": n.get("http_url"),
                    "appliedIndex": n["applied_index"],
                }
                for n in status["nodes"]
            ],
            "leader": status["leader"],
            "term": status["term"],
            "hasQuorum": status["has_quorum"],
            "version": __version__,
            "tenants": [{"name": t, **c} for t, c in sorted(counts.items())],
            "stores": status["stores"],
        }
    )


# -- managed API keys --------------------------------------------------------------------------


def _key_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "name": record["name"],
        "tenant": record.get("tenant"),
        "role": record["role"],
        "prefix": record.get("prefix"),
        "status": record["status"],
        "models": record.get("models"),
        "limits": record.get("limits", {}),
        "publishedModel": record.get("published_model"),
        "parent": record.get("parent"),
        "createdAt": iso(record["created_at"]),
        "expiresAt": iso(record.get("expires_at")),
        "revokedAt": iso(record.get("revoked_at")),
    }


def _owned_key(node: Node, principal: Principal, key_id: str) -> dict[str, Any]:
    """A key the caller may see: any for admins, its own tenant's for others."""
    record = node.raft.state.api_keys.get(key_id)
    if record is None:
        raise ApiError(404, "API key not found")
    if not principal.is_admin and record.get("tenant") != principal.tenant:
        raise ApiError(403, f"Insufficient permissions for tenant: {record.get('tenant')}")
    return record


def managed_key(node: Node, principal: Principal, key_id: str) -> dict[str, Any]:
    """A key the caller may rotate or revoke. Admins: any. A key: itself and the keys
    minted from it (never a sibling, whose secret or scope it must not take over).
    Another tenant credential (a token): its tenant's keys, if its role is minter."""
    record = _owned_key(node, principal, key_id)
    if principal.is_admin:
        return record
    if principal.key is not None:
        keys = node.raft.state.api_keys
        ancestor: Any = record["id"]
        while ancestor is not None and ancestor != principal.id:
            ancestor = keys.get(ancestor, {}).get("parent")
        if ancestor == principal.id:
            return record
        raise ApiError(403, "a key may rotate or revoke only itself and the keys it minted")
    if principal.can_mint:
        return record
    raise ApiError(403, "managing keys needs role admin or minter")


async def list_keys(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    tenants = visible_tenants(node, principal, request.query.get("namespace"))
    keys = [
        _key_view(k)
        for k in node.raft.state.api_keys.values()
        if tenants is None or k.get("tenant") in tenants
    ]
    return json_response(
        {"keys": sorted(keys, key=lambda k: k["createdAt"] or ""), "total": len(keys)}
    )


async def get_key(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    return json_response(_key_view(_owned_key(node, principal, request.match_info["key_id"])))


class KeyCreate(ApiBody):
    name: Annotated[str, Meta(min_length=1, max_length=100, description="1-100 characters")] = "key"
    namespace: Annotated[str | None, Meta(description="the key's tenant")] = None
    tenant_id: Annotated[str | None, Meta(description="same as namespace")] = None
    role: Annotated[
        Literal[KEY_ROLES],  # type: ignore[valid-type]
        Meta(description="user, minter (may create keys no wider than itself) or admin"),
    ] = "user"
    models: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=256)]],
            Meta(
                min_length=1,
                max_length=100,
                description="1-100 model ids: the only models the key may use (leave it out "
                "for every model; a minted key inherits its parent's)",
            ),
        ]
        | None
    ) = None
    limits: LimitsField = None
    expires_in_secs: (
        Annotated[
            int,
            Meta(ge=1, le=10 * 365 * 86400, description="a positive integer, ten years at most"),
        ]
        | None
    ) = None


async def create_key(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    if not principal.can_mint:
        raise ApiError(
            403,
            "this credential may not create keys: that needs role admin, or role minter "
            "in a tenant",
        )
    body = await read_body(request, KeyCreate)
    role = body.role
    if role == "admin" and not principal.is_admin:
        raise ApiError(403, "Insufficient permissions: only admins create admin keys")
    named = body.namespace or body.tenant_id
    tenant = None if role == "admin" and not named else scope_tenant(node, principal, named)
    name, models, ttl = body.name, body.models, body.expires_in_secs
    limits = parse_limits(body.limits)
    expires_at = time.time() + ttl if ttl else None
    # A key minted by a (non-admin) key is bound to it: no wider, and revoked with it.
    parent = principal.key if principal.key is not None and not principal.is_admin else None
    if parent is not None:
        models, limits, expires_at = narrow_to_parent(parent, models, limits, expires_at)
    key, prefix, digest = new_secret("mg_")
    spec = {
        "id": f"key-{uuid.uuid4().hex[:12]}",
        "name": name,
        "tenant": tenant,
        "role": role,
        "prefix": prefix,
        "hash": digest,
        "models": models,
        "limits": limits,
        "expires_at": expires_at,
        "parent": parent["id"] if parent is not None else None,
    }
    await node.commit("key.create", {"key": spec}, principal, shows_secret=True)
    view = _key_view(node.raft.state.api_keys[spec["id"]])
    return json_response(
        {"message": "API key created; this is the only time it is shown", **view, "apiKey": key},
        status=201,
    )


def narrow_to_parent(
    parent: dict[str, Any],
    models: list[str] | None,
    limits: dict[str, int],
    expires_at: float | None,
) -> tuple[list[str] | None, dict[str, int], float | None]:
    """A minted key's scope: what it asked for, inheriting the parent's restrictions it
    left out; 403 when it asks for more than the parent has."""
    allowed = parent.get("models") or None  # an empty list in old records meant "all"
    if allowed is not None:
        if models is None:
            models = list(allowed)
        elif not set(models) <= set(allowed):
            wider = sorted(set(models) - set(allowed))
            raise ApiError(
                403, f"a minted key cannot use models its parent cannot: {', '.join(wider)}"
            )
    narrowed = dict(limits)
    for field, ceiling in (parent.get("limits") or {}).items():
        asked = narrowed.get(field)
        if asked is None:
            narrowed[field] = ceiling
        elif asked > ceiling:
            raise ApiError(403, f"a minted key's {field} cannot exceed its parent's ({ceiling})")
    parent_expiry = parent.get("expires_at")
    if parent_expiry is not None:
        if expires_at is None:
            expires_at = parent_expiry
        elif expires_at > parent_expiry:
            raise ApiError(403, "a minted key cannot outlive its parent (expiresInSecs too long)")
    return models, narrowed, expires_at


async def revoke_key(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    record = managed_key(node, principal, request.match_info["key_id"])
    await node.commit("key.revoke", {"id": record["id"]}, principal)
    return json_response({"message": "API key revoked", "id": record["id"]})


async def rotate_key(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    record = managed_key(node, principal, request.match_info["key_id"])
    key, prefix, digest = new_secret("pk_live_" if record.get("published_model") else "mg_")
    await node.commit(
        "key.rotate",
        {"id": record["id"], "prefix": prefix, "hash": digest},
        principal,
        shows_secret=True,
    )
    return json_response(
        {
            "message": "API key rotated successfully",
            "newApiKey": key,
            "updatedAt": iso(time.time()),
            "id": record["id"],
        }
    )


async def audit_entries(request: web.Request, _: Principal) -> web.Response:
    limit = request.query.get("limit", "100")
    if (
        not (limit.isascii() and limit.isdigit() and len(limit) <= 5)
        or not 1 <= int(limit) <= 10000
    ):
        raise ApiError(400, "limit must be an integer from 1 to 10000")
    kind = request.query.get("kind", "changes")
    if kind not in ("changes", "refusals"):
        raise ApiError(400, "kind must be changes (the default) or refusals")
    log = request.app[AUDIT]
    entries = log.tail(int(limit), refusals=kind == "refusals")
    return json_response({"node": log.node, "kind": kind, "entries": entries})


class ValidateKey(msgspec.Struct, rename="camel"):  # open, as seed 002 has it
    api_key: Annotated[str, Meta(min_length=1, description="the key to check")]


async def validate_api_key(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    key = (await read_body(request, ValidateKey)).api_key
    found = (
        node.auth.identify(key)
        if not node.auth.tokens or not node.auth.tokens.looks_like_jwt(key)
        else None
    )
    if found is None or found.kind != "managed_key" or found.key is None:
        return json_response({"valid": False})
    if not principal.is_admin and found.tenant != principal.tenant:
        return json_response({"valid": False})
    published = found.key.get("published_model")
    return json_response(
        {
            "valid": True,
            "tenant": found.tenant,
            "model": published.split("/", 1)[1] if published else None,
            "keyId": found.id,
        }
    )


NAMESPACE: Final = Query("namespace", "the tenant (admins: required where a model is named)")


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "POST",
        "/api/admin/login",
        login,
        Audience.PUBLIC,
        "login",
        "management",
        "Exchange an admin username and password for a token",
        answers={200: "token and user"},
        errors=(401, 429),
        body=Login,
        description=(
            "Failed logins throttle further tries per username and per client "
            "address (429 with Retry-After)."
        ),
        always_audited=True,  # every login attempt, failed ones in the refusals' file
        management_envelope=True,
    ),
    Route(
        "GET",
        "/api/admin/tenants",
        list_tenants,
        Audience.MANAGEMENT_ADMIN,
        "listTenants",
        "management",
        "Every tenant",
        answers={200: "tenants"},
    ),
    Route(
        "POST",
        "/api/admin/tenants",
        create_tenant,
        Audience.MANAGEMENT_ADMIN,
        "createTenant",
        "management",
        "Create a tenant",
        answers={201: "created"},
        errors=(409, *COMMIT),
        body=TenantCreate,
    ),
    Route(
        "DELETE",
        "/api/admin/tenants/{name}",
        delete_tenant,
        Audience.MANAGEMENT_ADMIN,
        "deleteTenant",
        "management",
        "Delete a tenant with no active keys and no models",
        answers={200: "deleted"},
        errors=(404, 409, *COMMIT),
    ),
    Route(
        "GET",
        "/api/admin/system",
        system,
        Audience.MANAGEMENT_ADMIN,
        "system",
        "management",
        "The mesh: nodes, leader, quorum, per-tenant counts",
        answers={200: "system"},
    ),
    Route(
        "GET",
        "/api/admin/audit",
        audit_entries,
        Audience.MANAGEMENT_ADMIN,
        "audit",
        "management",
        "The latest entries of this node's audit log",
        answers={200: "node, kind, entries"},
        errors=(400,),
        query=(
            Query(
                "limit",
                "how many entries (1-10000, default 100)",
                {"type": "string", "pattern": "^[0-9]+$"},
            ),
            Query(
                "kind",
                "changes (default: changes and what callers with a credential were refused) or "
                "refusals (answers >= 400 to callers without one, kept apart and bounded)",
                {"type": "string", "enum": ["changes", "refusals"]},
            ),
        ),
    ),
    Route(
        "POST",
        "/api/admin/logout",
        logout,
        Audience.TOKEN,
        "logout",
        "management",
        "Revoke every token meshgate issued to the caller (sign out everywhere)",
        answers={200: "signed out"},
        errors=COMMIT,
    ),
    Route(
        "POST",
        "/api/admin/users/{username}/revoke-tokens",
        revoke_tokens,
        Audience.MANAGEMENT_ADMIN,
        "revokeTokens",
        "management",
        "Revoke every token meshgate issued to a user so far",
        answers={200: "revoked"},
        errors=(400, *COMMIT),
    ),
    Route(
        "GET",
        "/api/keys",
        list_keys,
        Audience.MANAGEMENT,
        "listKeys",
        "management",
        "Managed API keys (a user sees its tenant's)",
        answers={200: "keys, total"},
        errors=(400, 403, 404),
        query=(NAMESPACE,),
    ),
    Route(
        "POST",
        "/api/keys",
        create_key,
        Audience.MANAGEMENT_MINTER,
        "createKey",
        "management",
        "Create a managed API key (shown in full only now)",
        answers={201: "the key"},
        errors=(403, 404, 409, 422, *COMMIT),
        body=KeyCreate,
        description=(
            "A key minted by a key is no wider than it (models, limits, expiry) "
            "and is revoked with it."
        ),
    ),
    Route(
        "GET",
        "/api/keys/{key_id}",
        get_key,
        Audience.MANAGEMENT,
        "getKey",
        "management",
        "One managed API key",
        answers={200: "the key (never its secret)"},
        errors=(403, 404),
    ),
    Route(
        "DELETE",
        "/api/keys/{key_id}",
        revoke_key,
        Audience.MANAGEMENT,
        "revokeKey",
        "management",
        "Revoke a managed API key (in force on every node once committed)",
        answers={200: "revoked"},
        errors=(403, 404, *COMMIT),
    ),
    Route(
        "POST",
        "/api/keys/{key_id}/rotate",
        rotate_key,
        Audience.MANAGEMENT,
        "rotateKey",
        "management",
        "Replace a key's secret (the new one shown only now)",
        answers={200: "the new key"},
        errors=(403, 404, 409, *COMMIT),
    ),
    Route(
        "POST",
        "/api/validate-api-key",
        validate_api_key,
        Audience.MANAGEMENT,
        "validateKey",
        "management",
        "Is this a valid managed key (of the caller's tenant)?",
        answers={200: "valid, tenant, model, keyId"},
        body=ValidateKey,
        current_first=False,  # a read: ?consistent=true makes it linearizable
    ),
)
