"""The OpenAPI document's building blocks: schema helpers, component schemas, responses."""

from __future__ import annotations

from typing import Any, Final

from node.api import manage
from node.config import OPTIONS
from node.ha.peers import MESH_TOKEN_HEADER
from node.routing.registry import POLICY_NAMES
from node.runtime import RUNTIME_SETTINGS

Schema = dict[str, Any]

# -- small schema helpers ------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: dict[str, Schema],
    required: tuple[str, ...] = (),
    *,
    closed: bool = True,
    description: str | None = None,
    **extra: Any,
) -> Schema:
    """An object schema; `closed` means the handler rejects unknown fields."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    schema.update(extra)
    return schema


def string(description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


VERSION: Final = {
    "type": ["integer", "null"],
    "minimum": 0,
    "description": "optimistic concurrency: the record's current version (0: must not exist)",
}
LABELS: Final = {"type": "object", "additionalProperties": {"type": "string"}}
NAME_PATTERN: Final = manage.NAME.pattern

# -- component schemas -----------------------------------------------------------------------------


# Bounds of the runtime settings, from their declared checks (node/config/sections.py).
RUNTIME_BOUNDS: Final[dict[str, dict[str, float]]] = {
    o.name: o.bounds for o in OPTIONS if o.runtime and o.bounds
}


def _runtime_settings() -> Schema:
    options = {o.name: o for o in OPTIONS}
    properties: dict[str, Schema] = {}
    for name in RUNTIME_SETTINGS:
        option = options[name]
        kind = {int: "integer", float: "number", str: "string"}.get(option.kind, "boolean")
        schema: Schema = {"type": kind, "description": option.help, **RUNTIME_BOUNDS.get(name, {})}
        if name == "policy":
            schema["enum"] = list(POLICY_NAMES)
        if option.many:  # a list, or its entries as one comma-separated text
            items = {"type": kind}
            schema = {
                "description": option.help,
                "anyOf": [items, {"type": "array", "items": items}],
            }
        properties[name] = schema
    return obj(
        properties,
        minProperties=1,
        description="runtime settings to change (a value may also be given as text, "
        'as on the command line, e.g. "5" or "true")',
    )


# node.limits.quotas.Limits.from_dict accepts these (the fuzz test compares the two).
QUOTA_FIELDS: Final = (
    "burst",
    "requests_per_minute",
    "requests_per_hour",
    "tokens_per_hour",
    "max_concurrent",
    "requestsPerMinute",
    "requestsPerHour",
    "tokensPerHour",
    "burstLimit",
    "maxConcurrent",
)
LIMITS: Final = {
    "type": ["object", "null"],
    "description": "quotas (snake_case or camelCase names; null or absent: no limit)",
    "properties": {name: {"type": ["integer", "null"], "minimum": 1} for name in QUOTA_FIELDS},
    "additionalProperties": False,
}

_INFERENCE_BODY = obj(
    {
        "model": {"type": ["string", "null"], "minLength": 1},
        "stream": {"type": "boolean"},
    },
    closed=False,
    description="an OpenAI- or SGLang-style body; the gateway reads `model` and `stream` and "
    "forwards the rest to a worker unchanged",
)

# What a write's error says of its command (node.app.commit_failure, Node.commit).
OUTCOME_FIELDS: Final[dict[str, Schema]] = {
    "outcome": {
        "enum": ["rejected", "not_committed", "unknown", "applied"],
        "description": "rejected: applied as a refusal, nothing changed; not_committed: never "
        "will be applied; unknown: may have been applied (never after anything sent later); "
        "applied: an Idempotency-Key replay that cannot show the first answer's secret",
    },
    "request_id": {"type": ["string", "null"], "description": "the command's request id"},
    "expires_at": {
        "type": "number",
        "description": "when unknown: the command cannot be applied once the log's clock has "
        "passed this (GET /ha/requests/{request_id}?expires_at=...)",
    },
    "replayed": {"type": "boolean", "description": "answered from an earlier attempt"},
    "value": {"description": "the first attempt's outcome (IDEMPOTENCY_KEY_REUSED)"},
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "type": string("e.g. invalid_request_error, authentication_error"),
                    "code": string("machine-readable, e.g. BAD_REQUEST, WORKER_NOT_FOUND"),
                    "message": string("what went wrong and what to do"),
                    "param": {"type": ["string", "null"], "description": "the field at fault"},
                },
                ("type", "code", "message", "param"),
                closed=False,
                description="may carry more context (e.g. current_version, effective); a "
                "write's error says what became of its command: outcome (rejected, "
                "not_committed or unknown), request_id and, when unknown, expires_at",
            )
        },
        ("error",),
        description="the error body of every route outside /api/",
    ),
    "ApiError": obj(
        {
            "error": string("what went wrong"),
            "details": {"description": "more detail, or null"},
            "code": string("machine-readable, e.g. BAD_REQUEST, NOT_FOUND"),
            **OUTCOME_FIELDS,
        },
        ("error", "details", "code"),
        description="the error body of the management API (/api/...); a write's error also "
        "carries outcome, request_id and, when unknown, expires_at",
    ),
    "Limits": LIMITS,
    "RuntimeSettings": _runtime_settings(),
    "Predict": obj(
        {
            "inputData": {"type": "object", "description": "the body below, wrapped"},
            "messages": {"type": "array", "description": "-> /v1/chat/completions"},
            "prompt": {"description": "-> /v1/completions"},
            "input": {"description": "-> /v1/embeddings"},
            "text": {"description": "-> /generate"},
            "model": {"type": ["string", "null"], "minLength": 1},
            "stream": {"type": "boolean"},
        },
        closed=False,
        description="an OpenAI-style body (one of messages, prompt, input or text decides "
        "the worker route), optionally wrapped in inputData",
        anyOf=[{"required": [k]} for k in ("inputData", "messages", "prompt", "input", "text")],
    ),
    "Inference": _INFERENCE_BODY,
    "Object": {"type": "object", "description": "a JSON object (see the route's description)"},
}

# -- responses -------------------------------------------------------------------------------------

ERROR_NAMES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    422: "LimitReached",
    429: "TooManyRequests",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_ERROR_TEXT: Final = {
    400: "the request is malformed or invalid; the message says what to fix",
    401: "no valid credential",
    403: "the credential may not do this (e.g. not an admin, another tenant)",
    404: "no such object",
    409: "conflicts with the current state (a duplicate, a version mismatch, a state that "
    "does not allow it)",
    413: "the body or the record is larger than its limit (the body says which)",
    422: "the tenant already holds as many objects of this kind as it may (the body says how many)",
    429: "a rate limit, quota or the node's capacity is exhausted; retry after Retry-After",
    502: "the worker did not answer",
    503: "not available right now (e.g. a write was not committed, or its outcome is unknown: "
    "no leader or quorum; the body's outcome says which); retry after Retry-After",
    504: "the worker did not answer in time (or, for a write, the wait for its commit ran "
    "out: outcome unknown)",
}
_RETRY_AFTER: Final = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
}
_WWW_AUTHENTICATE: Final = {
    "WWW-Authenticate": {"description": 'Bearer realm="meshgate"', "schema": {"type": "string"}}
}


def _error_response(status: int, schema: str) -> Schema:
    response: Schema = {
        "description": _ERROR_TEXT[status],
        "content": {"application/json": {"schema": ref(schema)}},
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    elif status == 401:
        response["headers"] = _WWW_AUTHENTICATE
    return response


RESPONSES: Final[dict[str, Schema]] = {
    **{name: _error_response(code, "Error") for code, name in ERROR_NAMES.items()},
    **{"Api" + name: _error_response(code, "ApiError") for code, name in ERROR_NAMES.items()},
}

SECURITY_SCHEMES: Final = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key, a control-plane key, a managed key or a JWT",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "the same credentials; used only when Authorization is absent",
    },
    "meshToken": {
        "type": "apiKey",
        "in": "header",
        "name": MESH_TOKEN_HEADER,
        "description": "the mesh token other nodes present (GET /ha/local only)",
    },
    "queryToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "for browsers, which cannot set headers on a WebSocket (GET /ws only); "
        "the subprotocol bearer.<token> works too",
    },
}
_CREDENTIAL: Final = [{"bearer": []}, {"apiKey": []}]
AUTH: Final[dict[str, tuple[list[dict[str, list[str]]], tuple[int, ...], str]]] = {
    # group: (security, the errors the guard itself answers, what the group means)
    "public": ([], (), "public: no credential"),
    "protected": (
        _CREDENTIAL,
        (401, 403),
        "protected: any valid credential but a publication key (open only when none is configured)",
    ),
    "control_plane": (
        _CREDENTIAL,
        (401, 403),
        "control plane: an admin credential (or the API key when it is the only one)",
    ),
    "management": (
        _CREDENTIAL,
        (401, 403, 429),
        "management: any valid credential but a publication key, scoped to its tenant",
    ),
    "management_minter": (
        _CREDENTIAL,
        (401, 403, 429),
        "management: an admin, or a credential with role minter in its own tenant",
    ),
    "published": (
        _CREDENTIAL,
        (401, 403),
        "the publication's own key, an admin, or a user of a tenant the publication allows",
    ),
    "management_admin": (_CREDENTIAL, (401, 403), "management: an admin credential"),
    "token": (_CREDENTIAL, (401, 403, 429), "management: a token meshgate issued"),
    "mesh": (
        [*_CREDENTIAL, {"meshToken": []}],
        (401, 403),
        "the mesh token of a peer, or an admin credential",
    ),
    "websocket": (
        [*_CREDENTIAL, {"queryToken": []}],
        (401, 403),
        "an admin, or a tenant's user or minter (who sees that tenant's changes); never a "
        "publication key",
    ),
}
