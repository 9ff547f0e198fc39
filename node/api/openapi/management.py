"""The management API's operations (/api) and the live-update WebSocket."""

from __future__ import annotations

from node.api.openapi.operations import COMMIT, NAMESPACE, ok, op, query
from node.api.openapi.schemas import ref

# management (/api) ---------------------------------------------------------------------------
op(
    "POST",
    "/api/admin/login",
    "login",
    "management",
    "Exchange an admin username and password for a token",
    auth="public",
    body=ref("Login"),
    success={200: ok("token and user")},
    errors=(401, 429),
    description="Failed logins throttle further tries per username and per client address "
    "(429 with Retry-After).",
)
op(
    "GET",
    "/api/admin/tenants",
    "listTenants",
    "management",
    "Every tenant",
    auth="management_admin",
    success={200: ok("tenants")},
)
op(
    "POST",
    "/api/admin/tenants",
    "createTenant",
    "management",
    "Create a tenant",
    auth="management_admin",
    body=ref("TenantCreate"),
    success={201: ok("created")},
    errors=(409, *COMMIT),
)
op(
    "DELETE",
    "/api/admin/tenants/{name}",
    "deleteTenant",
    "management",
    "Delete a tenant with no active keys and no models",
    auth="management_admin",
    success={200: ok("deleted")},
    errors=(404, 409, *COMMIT),
)
op(
    "GET",
    "/api/admin/system",
    "system",
    "management",
    "The mesh: nodes, leader, quorum, per-tenant counts",
    auth="management_admin",
    success={200: ok("system")},
)
op(
    "GET",
    "/api/admin/audit",
    "audit",
    "management",
    "The latest entries of this node's audit log",
    auth="management_admin",
    params=(
        query(
            "limit",
            "how many entries (1-10000, default 100)",
            {"type": "string", "pattern": "^[0-9]+$"},
        ),
        query(
            "kind",
            "changes (default: changes and what callers with a credential were refused) or "
            "refusals (answers >= 400 to callers without one, kept apart and bounded)",
            {"type": "string", "enum": ["changes", "refusals"]},
        ),
    ),
    success={200: ok("node, kind, entries")},
    errors=(400,),
)
op(
    "POST",
    "/api/admin/logout",
    "logout",
    "management",
    "Revoke every token meshgate issued to the caller (sign out everywhere)",
    auth="token",
    success={200: ok("signed out")},
    errors=COMMIT,
)
op(
    "POST",
    "/api/admin/users/{username}/revoke-tokens",
    "revokeTokens",
    "management",
    "Revoke every token meshgate issued to a user so far",
    auth="management_admin",
    success={200: ok("revoked")},
    errors=(400, *COMMIT),
)
op(
    "GET",
    "/api/keys",
    "listKeys",
    "management",
    "Managed API keys (a user sees its tenant's)",
    auth="management",
    params=(NAMESPACE,),
    success={200: ok("keys, total")},
    errors=(400, 403, 404),
)
op(
    "POST",
    "/api/keys",
    "createKey",
    "management",
    "Create a managed API key (shown in full only now)",
    auth="management_minter",
    body=ref("KeyCreate"),
    success={201: ok("the key")},
    errors=(403, 404, 409, 422, *COMMIT),
    description="A key minted by a key is no wider than it (models, limits, expiry) and is "
    "revoked with it.",
)
op(
    "GET",
    "/api/keys/{key_id}",
    "getKey",
    "management",
    "One managed API key",
    auth="management",
    success={200: ok("the key (never its secret)")},
    errors=(403, 404),
)
op(
    "DELETE",
    "/api/keys/{key_id}",
    "revokeKey",
    "management",
    "Revoke a managed API key (in force on every node once committed)",
    auth="management",
    success={200: ok("revoked")},
    errors=(403, 404, *COMMIT),
)
op(
    "POST",
    "/api/keys/{key_id}/rotate",
    "rotateKey",
    "management",
    "Replace a key's secret (the new one shown only now)",
    auth="management",
    success={200: ok("the new key")},
    errors=(403, 404, 409, *COMMIT),
)
op(
    "POST",
    "/api/validate-api-key",
    "validateKey",
    "management",
    "Is this a valid managed key (of the caller's tenant)?",
    auth="management",
    body=ref("ValidateKey"),
    success={200: ok("valid, tenant, model, keyId")},
)
op(
    "GET",
    "/api/models",
    "listDeployments",
    "management",
    "Model deployments",
    auth="management",
    params=(NAMESPACE,),
    success={200: ok("models")},
    errors=(400, 403, 404),
)
op(
    "POST",
    "/api/models",
    "createDeployment",
    "management",
    "Create a model deployment",
    auth="management",
    body=ref("ModelCreate"),
    success={201: ok("created")},
    errors=(403, 404, 409, 422, *COMMIT),
)
for _method, _id, _summary, _extra in (
    ("GET", "getDeployment", "One model deployment", {"success": {200: ok("the model")}}),
    (
        "PUT",
        "updateDeployment",
        "Change a model deployment",
        {"success": {200: ok("updated")}, "body": ref("ModelUpdate"), "errors": (409, *COMMIT)},
    ),
    (
        "DELETE",
        "deleteDeployment",
        "Delete an unpublished model deployment",
        {"success": {200: ok("deleted")}, "errors": (409, *COMMIT)},
    ),
):
    op(
        _method,
        "/api/models/{name}",
        _id,
        "management",
        _summary,
        auth="management",
        params=(NAMESPACE,),
        **{**_extra, "errors": (400, 403, 404, *_extra.get("errors", ()))},
    )
op(
    "POST",
    "/api/models/{name}/predict",
    "predict",
    "management",
    "Send an inference request to a deployment's workers",
    auth="management",
    params=(NAMESPACE,),
    body=ref("Predict"),
    success={200: ok("the worker's answer")},
    errors=(403, 404, 429, 502, 503, 504),
    relayed=True,
    description="A worker's own error is relayed unchanged, in its own (OpenAI) shape.",
)
for _method, _id, _summary, _extra in (
    (
        "POST",
        "publish",
        "Publish a deployment on an external path, with its own key",
        {
            "success": {201: ok("published")},
            "body": ref("Publish"),
            "errors": (409, 422, *COMMIT),
            "auth": "management_minter",
        },
    ),
    ("GET", "getPublication", "A deployment's publication", {"success": {200: ok("it")}}),
    (
        "PUT",
        "updatePublication",
        "Change a publication",
        {
            "success": {200: ok("updated")},
            "body": ref("Publish"),
            "errors": (409, *COMMIT),
            "auth": "management_minter",
        },
    ),
    (
        "DELETE",
        "unpublish",
        "Unpublish a deployment",
        {"success": {200: ok("unpublished")}, "errors": COMMIT, "auth": "management_minter"},
    ),
):
    op(
        _method,
        "/api/models/{name}/publish",
        _id,
        "management",
        _summary,
        params=(NAMESPACE,),
        **{
            "auth": "management",
            **_extra,
            "errors": (400, 403, 404, *_extra.get("errors", ())),
        },
    )
op(
    "POST",
    "/api/models/{name}/publish/rotate-key",
    "rotatePublicationKey",
    "management",
    "Replace a publication's key",
    auth="management_minter",
    params=(NAMESPACE,),
    success={200: ok("the new key")},
    errors=(400, 403, 404, 409, *COMMIT),
)
op(
    "GET",
    "/api/published-models",
    "listPublished",
    "management",
    "Published models",
    auth="management",
    params=(NAMESPACE,),
    success={200: ok("publishedModels, total")},
    errors=(400, 403, 404),
)
op(
    "GET",
    "/ws",
    "liveChanges",
    "management",
    "A WebSocket of live control-state changes, in commit order",
    auth="websocket",
    params=(query("token", "a credential, for browsers (or subprotocol bearer.<token>)"),),
    success={101: {"description": "switching protocols: JSON text messages follow"}},
    errors=(400, 503),
    description="400: not a WebSocket upgrade; 503: the node is shutting down.",
)
