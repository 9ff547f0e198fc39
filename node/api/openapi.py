"""`GET /openapi.json` (public): this node's own OpenAPI 3.1 document.

The document is plain Python data, built once when this module is imported and
served as pre-encoded bytes, so a request does no work. It describes what the
handlers really do: every installed route (the `/models/{name}/{tail}`
catch-all is described by the one tail clients use, `/models/{name}/predict`),
its audience (tag), who may call it (`security`, and `x-meshgate-auth` naming
the route group), the request bodies the handlers accept (unknown fields are
`additionalProperties: false` wherever the handler rejects them), and the
status codes they answer with.

Two error shapes exist (`node.errors`): `{"error": {"type", "code", "message",
"param"}}` (`Error`) on every route except the management API under `/api/`,
which answers `{"error": text, "details": any, "code": text}` (`ApiError`).

Where a value set lives in code (worker types, routing policies and their
parameters, runtime settings, name and key patterns), the schema is built from
it; the rest (field lists, quota names, runtime bounds) is compared with the
code by tests/integration/test_fuzz_control_plane.py.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
from aiohttp import web

from mesh.state import WORKER_TYPES
from node import __version__
from node.api import ha, manage
from node.api.common import MAX_DEPTH
from node.api.openai import INFERENCE_ROUTES
from node.config import OPTIONS
from node.ha.peers import MESH_TOKEN_HEADER
from node.routing.registry import PARAMS, POLICY_NAMES
from node.runtime import RUNTIME_SETTINGS

Schema = dict[str, Any]
PATH: Final = "/openapi.json"

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


NON_EMPTY_OR_NULL: Final = {"type": ["string", "null"], "minLength": 1}
VERSION: Final = {
    "type": ["integer", "null"],
    "minimum": 0,
    "description": "optimistic concurrency: the record's current version (0: must not exist)",
}
VERSION_OR_DIGITS: Final = {
    "description": "optimistic concurrency: the record's current version (0: must not exist); "
    "a string of digits is accepted too",
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+$"},
        {"type": "null"},
    ],
}
LABELS: Final = {"type": "object", "additionalProperties": {"type": "string"}}
NAME_PATTERN: Final = manage.NAME.pattern

# -- component schemas -----------------------------------------------------------------------------


def _param_schema(kind: str, low: float | None, high: float | None) -> Schema:
    if kind == "seed":
        return {"type": ["integer", "null"]}
    schema: Schema = {"type": "integer" if kind == "int" else "number"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def _policy_variants() -> list[Schema]:
    """One schema per routing policy: its name and exactly its parameters."""
    variants = []
    for name in POLICY_NAMES:
        params = {
            key: {**_param_schema(spec.kind, spec.low, spec.high), "default": spec.default}
            for key, spec in PARAMS[name].items()
        }
        variants.append(
            obj(
                {
                    "policy": {"const": name},
                    "params": {
                        "type": ["object", "null"],
                        "properties": params,
                        "additionalProperties": False,
                    },
                    "expected_version": VERSION,
                },
                ("policy",),
                title=name,
            )
        )
    return variants


# Bounds of the runtime settings (the checks in node.config.OPTIONS; a unit test compares them).
RUNTIME_BOUNDS: Final[dict[str, dict[str, float]]] = {
    "queue_size": {"minimum": 0},
    "queue_timeout_secs": {"minimum": 0},
    "request_timeout_secs": {"minimum": 0.001},
    "retry_max_retries": {"minimum": 1},
    "retry_initial_backoff_ms": {"minimum": 0},
    "retry_max_backoff_ms": {"minimum": 0},
    "retry_backoff_multiplier": {"minimum": 1.0},
    "retry_jitter_factor": {"minimum": 0, "maximum": 1},
    "cb_failure_threshold": {"minimum": 1},
    "cb_success_threshold": {"minimum": 1},
    "cb_timeout_duration_secs": {"minimum": 0},
    "cb_window_duration_secs": {"minimum": 0.001},
    "health_failure_threshold": {"minimum": 1},
    "health_success_threshold": {"minimum": 1},
    "health_check_timeout_secs": {"minimum": 0.001},
    "health_check_interval_secs": {"minimum": 0.01},
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

_CREATE_WORKER = {
    "url": string(
        "the worker's base URL: http(s):// or grpc(s):// with a host, no query or fragment",
        format="uri",
        pattern="^\\s*(https?|grpcs?)://[^\\s/?#]+",
    ),
    "model_id": NON_EMPTY_OR_NULL,
    "worker_type": {"enum": list(WORKER_TYPES)},
    "runtime": NON_EMPTY_OR_NULL,
    "priority": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
    "cost": {"type": "number", "minimum": 0},
    "labels": LABELS,
    "api_key": {**NON_EMPTY_OR_NULL, "description": "sent to the worker; never shown again"},
    "connection_mode": {
        "enum": ["http", "grpc"],
        "description": "must match the url scheme (which decides it anyway)",
    },
}
_MUTABLE_WORKER = ("model_id", "worker_type", "runtime", "priority", "cost", "labels", "api_key")
_UPDATE_WORKER = {
    **{k: _CREATE_WORKER[k] for k in _MUTABLE_WORKER},
    "url": {"description": "may be sent, but must equal the worker's current url"},
    "expected_version": VERSION,
}
_SELECTOR = {
    "type": ["object", "null"],
    "properties": {
        "model_id": {"type": "string"},
        "labels": {**LABELS, "type": ["object", "null"]},
    },
    "additionalProperties": False,
}
_MODEL_FIELDS: dict[str, Schema] = {
    "name": string("1-63 lowercase letters, digits or '-'", pattern=NAME_PATTERN),
    "namespace": {"type": ["string", "null"], "description": "the tenant (admins must name it)"},
    "tenantId": {"type": ["string", "null"], "description": "same as namespace"},
    "modelId": {"type": ["string", "null"], "description": "selects workers by model id"},
    "selector": _SELECTOR,
    "framework": {"type": ["string", "null"]},
    "storageUri": {"type": ["string", "null"]},
    "minReplicas": {"type": "integer", "minimum": 0},
    "maxReplicas": {"type": "integer", "minimum": 0},
    "scaleTarget": {"type": "integer", "minimum": 0},
    "scaleMetric": {"type": "string"},
    "policy": {"enum": [*POLICY_NAMES, None]},
    "policyParams": {
        "type": ["object", "null"],
        "description": "the policy's parameters (see PolicySet)",
    },
    "description": {"type": ["string", "null"]},
}
_PUBLISH_CONFIG = obj(
    {
        "tenantId": {"type": ["string", "null"], "description": "must be the model's tenant"},
        "modelType": {"type": "string"},
        "externalPath": string(
            "/models/<name>", pattern="^/models/" + NAME_PATTERN.removeprefix("^")
        ),
        "publicHostname": {"type": "string"},
        "rateLimiting": LIMITS,
        "authentication": {
            "type": ["object", "null"],
            "properties": {
                "requireApiKey": {"type": "boolean"},
                "allowedTenants": {"type": "array", "items": {"type": "string"}},
            },
        },
        "metadata": {"type": "object"},
    }
)
_INFERENCE_BODY = obj(
    {
        "model": {"type": ["string", "null"], "minLength": 1},
        "stream": {"type": "boolean"},
    },
    closed=False,
    description="an OpenAI- or SGLang-style body; the gateway reads `model` and `stream` and "
    "forwards the rest to a worker unchanged",
)

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
                description="may carry more context (e.g. current_version, effective)",
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
        },
        ("error", "details", "code"),
        description="the error body of the management API (/api/...)",
    ),
    "Limits": LIMITS,
    "WorkerCreate": obj(_CREATE_WORKER, ("url",)),
    "WorkerUpdate": obj(
        _UPDATE_WORKER,
        description="one or more mutable fields (PUT and PATCH both change only what is sent)",
        anyOf=[{"required": [k]} for k in _MUTABLE_WORKER],
    ),
    "PolicySet": {"oneOf": _policy_variants(), "description": "a routing policy and its params"},
    "ConfigSet": obj(
        {
            "key": string(
                "1-256 letters, digits and . _ : / - (starting with a letter or digit)",
                pattern=ha.CONFIG_KEY.pattern,
            ),
            "value": {"description": f"any JSON value, at most {ha.CONFIG_VALUE_LIMIT} bytes"},
            "expected_version": VERSION_OR_DIGITS,
        },
        ("key", "value"),
    ),
    "RateLimitSet": obj(
        {
            "model": {"type": ["string", "null"], "description": "a model id; null or '*': all"},
            "scope": {"type": ["string", "null"], "description": "same as model"},
            "requests_per_second": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "description": "mesh-wide rate; null removes the rule",
            },
            "burst": {"type": "number", "minimum": 1},
            "expected_version": VERSION_OR_DIGITS,
        },
        ("requests_per_second",),
    ),
    "Shutdown": obj(
        {
            "target": {
                "type": ["string", "null"],
                "description": "'self' (default), 'cluster' or a member name",
            },
            "grace_period_secs": {"type": "number", "minimum": 0, "maximum": 86400},
            "drain_delay_secs": {"type": "number", "minimum": 0, "maximum": 86400},
        }
    ),
    "Drain": obj(
        {
            "target": {
                "type": ["string", "null"],
                "description": "'self' (default), 'cluster' or a member name",
            },
            "draining": {"type": "boolean", "default": True},
        }
    ),
    "MemberAdd": obj(
        {"raft_address": string("HOST:PORT of a running node", pattern="^.+:[0-9]+$")},
        ("raft_address",),
    ),
    "RuntimeSettings": _runtime_settings(),
    "BreakerReset": obj(
        {"worker_id": {"type": ["string", "null"], "description": "absent or null: every worker"}}
    ),
    "Login": obj(
        {"username": {"type": "string"}, "password": {"type": "string"}},
        ("username", "password"),
        closed=False,
    ),
    "TenantCreate": obj(
        {
            "name": string("1-63 lowercase letters, digits or '-'", pattern=NAME_PATTERN),
            "description": {"type": ["string", "null"]},
            "limits": ref("Limits"),
        },
        ("name",),
    ),
    "KeyCreate": obj(
        {
            "name": string(minLength=1, maxLength=100, default="key"),
            "namespace": {"type": ["string", "null"], "description": "the key's tenant"},
            "tenantId": {"type": ["string", "null"], "description": "same as namespace"},
            "role": {"enum": ["user", "admin"], "default": "user"},
            "models": {
                "type": ["array", "null"],
                "items": {"type": "string", "minLength": 1},
                "description": "the only models the key may use",
            },
            "limits": ref("Limits"),
            "expiresInSecs": {"type": ["integer", "null"], "minimum": 1},
        }
    ),
    "ValidateKey": obj({"apiKey": string(minLength=1)}, ("apiKey",), closed=False),
    "ModelCreate": obj(_MODEL_FIELDS, ("name",)),
    "ModelUpdate": obj(
        {k: v for k, v in _MODEL_FIELDS.items() if k not in ("name", "namespace", "tenantId")}
    ),
    "PublishConfig": _PUBLISH_CONFIG,
    "Publish": obj({"config": ref("PublishConfig")}, ("config",), closed=False),
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

_ERROR_NAMES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
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
    413: "the body is larger than --max-payload-size",
    429: "a rate limit, quota or the node's capacity is exhausted; retry after Retry-After",
    502: "the worker did not answer",
    503: "not available right now (e.g. the change was not committed: no leader or quorum); "
    "retry after Retry-After",
    504: "the worker did not answer in time",
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
    **{name: _error_response(code, "Error") for code, name in _ERROR_NAMES.items()},
    **{"Api" + name: _error_response(code, "ApiError") for code, name in _ERROR_NAMES.items()},
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
        (401,),
        "protected: any valid credential (open only when none is configured)",
    ),
    "control_plane": (
        _CREDENTIAL,
        (401, 403),
        "control plane: an admin credential (or the API key when it is the only one)",
    ),
    "management": (_CREDENTIAL, (401,), "management: any valid credential, scoped to its tenant"),
    "published": (
        _CREDENTIAL,
        (401, 403),
        "the publication's own key, an admin, or a user of a tenant the publication allows",
    ),
    "management_admin": (_CREDENTIAL, (401, 403), "management: an admin credential"),
    "mesh": (
        [*_CREDENTIAL, {"meshToken": []}],
        (401, 403),
        "the mesh token of a peer, or an admin credential",
    ),
    "websocket": (
        [*_CREDENTIAL, {"queryToken": []}],
        (401, 403),
        "an admin, or a tenant's user (who sees that tenant's changes)",
    ),
}

# -- operations ------------------------------------------------------------------------------------

SEGMENT: Final = "^[^{}]+$"  # the router matches no '{' or '}' in a path parameter
_PATH_PARAMS: Final[dict[str, Schema]] = {
    "worker_id": string("the worker's id (a UUID)", format="uuid", pattern=SEGMENT),
    "model_id": string("a model id ('*': the mesh-wide default)", pattern=SEGMENT),
    "key": string("a config key (may contain '/')", minLength=1),
    "scope": string("a rate-limit scope: a model id, or '*' for the global rule", pattern=SEGMENT),
    "name": string(pattern=SEGMENT),
    "key_id": string("a managed API key's id", pattern=SEGMENT),
}


def query(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


NAMESPACE: Final = query("namespace", "the tenant (admins: required where a model is named)")


def json_body(schema: Schema, description: str | None = None) -> Schema:
    content: Schema = {"schema": schema}
    return {"content": {"application/json": content}} | (
        {"description": description} if description else {}
    )


def ok(description: str, schema: Schema | None = None, media: str = "application/json") -> Schema:
    response: Schema = {"description": description}
    response["content"] = {media: {"schema": schema or ref("Object")}}
    return response


OPERATIONS: list[tuple[str, str, Schema]] = []


def op(
    method: str,
    path: str,
    operation_id: str,
    tag: str,
    summary: str,
    *,
    auth: str,
    success: dict[int, Schema],
    errors: tuple[int, ...] = (),
    body: Schema | None = None,
    body_required: bool = True,
    params: tuple[Schema, ...] = (),
    description: str | None = None,
    relayed: bool = False,
) -> None:
    """Add one operation; the auth group's and the body's own errors are added here."""
    security, auth_errors, auth_text = AUTH[auth]
    management = path.startswith("/api/")
    codes = set(errors) | set(auth_errors)
    if body is not None:
        codes |= {400, 413}
    operation: Schema = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": (description + "\n\n" if description else "") + f"Auth: {auth_text}.",
        "security": security,
        "x-meshgate-auth": auth,
    }
    path_params = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS[name]}
        for name in re.findall(r"{(\w+)}", path)
    ]
    if path_params or params:
        operation["parameters"] = [*path_params, *params]
    if body is not None:
        operation["requestBody"] = {"required": body_required, **json_body(body)}
    responses: dict[str, Schema] = {str(code): value for code, value in sorted(success.items())}
    prefix = "Api" if management else ""
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/{prefix}{_ERROR_NAMES[code]}"}
    if relayed:
        responses["default"] = {
            "description": "the worker's own answer, relayed unchanged (any status, its body)"
        }
    operation["responses"] = responses
    OPERATIONS.append((path, method.lower(), operation))


COMMIT: Final = (503,)  # every write is a Raft command: not committed -> 503 + Retry-After

# probes (public) --------------------------------------------------------------------------------
PROBE_503 = "not ready / not healthy; the body says why"
op(
    "GET",
    "/health",
    "health",
    "probes",
    "The node's status, workers and Raft role",
    auth="public",
    success={200: ok("status healthy or degraded")},
)
op(
    "GET",
    "/liveness",
    "liveness",
    "probes",
    "Is the process alive (its Raft thread running)?",
    auth="public",
    success={200: ok("alive"), 503: ok("the Raft thread has stopped")},
)
op(
    "GET",
    "/readiness",
    "readiness",
    "probes",
    "Should a load balancer send traffic here?",
    auth="public",
    success={200: ok("ready"), 503: ok(PROBE_503)},
)
op(
    "GET",
    "/health_generate",
    "healthGenerate",
    "probes",
    "Ask one healthy worker to prove it can generate",
    auth="public",
    success={200: ok("the worker generated"), 503: ok("no healthy worker, or it failed")},
)
op(
    "GET",
    "/health/ready",
    "healthReady",
    "probes",
    "Readiness with circuit-breaker and worker detail",
    auth="public",
    success={200: ok("ready"), 503: ok(PROBE_503)},
)
op(
    "GET",
    "/metrics",
    "metrics",
    "probes",
    "Prometheus metrics of this node",
    auth="public",
    success={200: ok("Prometheus text format", {"type": "string"}, "text/plain")},
)

# inference -------------------------------------------------------------------------------------
for _path in INFERENCE_ROUTES:
    op(
        "POST",
        _path,
        "inference_" + _path.strip("/").replace("/", "_"),
        "inference",
        f"Proxy {_path} to a worker serving the model",
        auth="protected",
        body=ref("Inference"),
        success={
            200: {
                "description": "the worker's answer (text/event-stream when stream is true)",
                "content": {
                    "application/json": {"schema": ref("Object")},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            }
        },
        errors=(403, 404, 429, 502, 503, 504),
        relayed=True,
        description="404: no worker serves the model; 403: the key may not use the model.",
    )
op(
    "GET",
    "/v1/models",
    "listModels",
    "inference",
    "The models ready workers serve (OpenAI list)",
    auth="public",
    success={200: ok("an OpenAI model list")},
)
op(
    "GET",
    "/get_model_info",
    "getModelInfo",
    "inference",
    "A worker's /get_model_info for a model",
    auth="public",
    params=(query("model", "the model id"),),
    success={200: ok("the worker's answer")},
    errors=(404, 502, 503),
    relayed=True,
)
op(
    "GET",
    "/get_server_info",
    "getServerInfo",
    "inference",
    "The gateway's and every ready worker's server info",
    auth="public",
    success={200: ok("gateway and workers")},
)
op(
    "GET",
    "/engine_metrics",
    "engineMetrics",
    "inference",
    "Every ready worker's /metrics, labelled with its worker id",
    auth="public",
    success={200: ok("Prometheus text format", {"type": "string"}, "text/plain")},
)
op(
    "POST",
    "/models/{name}/predict",
    "publishedPredict",
    "inference",
    "Call a published model on its external path",
    auth="published",
    body=ref("Predict"),
    success={200: ok("the worker's answer")},
    errors=(403, 404, 429, 502, 503, 504),
    relayed=True,
    description="Also served under /models/{name}/v1/chat/completions, /v1/completions and "
    "/v1/embeddings. 404 (no published model at the path) is answered before credentials "
    "are checked.",
)

# workers ---------------------------------------------------------------------------------------
op(
    "GET",
    "/workers",
    "listWorkers",
    "workers",
    "Every registered worker, with live status and stats",
    auth="control_plane",
    params=(query("model", "only workers of this model id"),),
    success={200: ok("workers, total, stats, applied_index")},
)
op(
    "POST",
    "/workers",
    "createWorker",
    "workers",
    "Register a worker; discovery runs in the background",
    auth="control_plane",
    body=ref("WorkerCreate"),
    success={202: ok("accepted; Location names the worker")},
    errors=(409, *COMMIT),
)
op(
    "GET",
    "/workers/{worker_id}",
    "getWorker",
    "workers",
    "One worker",
    auth="control_plane",
    success={200: ok("the worker")},
    errors=(400, 404),
)
for _method in ("PUT", "PATCH"):
    op(
        _method,
        "/workers/{worker_id}",
        f"{_method.lower()}Worker",
        "workers",
        "Change a worker's mutable fields",
        auth="control_plane",
        body=ref("WorkerUpdate"),
        success={200: ok("the updated worker")},
        errors=(404, 409, *COMMIT),
    )
op(
    "DELETE",
    "/workers/{worker_id}",
    "deleteWorker",
    "workers",
    "Drain a worker everywhere, then remove it",
    auth="control_plane",
    success={200: ok("deleted, with drain outcome")},
    errors=(400, 404, 409, *COMMIT),
)

# policies --------------------------------------------------------------------------------------
op(
    "GET",
    "/policies",
    "listPolicies",
    "policies",
    "Every model's routing policy and the default",
    auth="control_plane",
    success={200: ok("policies, default, node_fallback")},
)
op(
    "GET",
    "/policies/{model_id}",
    "getPolicy",
    "policies",
    "One model's policy",
    auth="control_plane",
    success={200: ok("the policy record")},
    errors=(404,),
)
op(
    "PUT",
    "/policies/{model_id}",
    "setPolicy",
    "policies",
    "Set a model's routing policy (mesh-wide)",
    auth="control_plane",
    body=ref("PolicySet"),
    success={200: ok("the policy record")},
    errors=(409, *COMMIT),
)
op(
    "DELETE",
    "/policies/{model_id}",
    "deletePolicy",
    "policies",
    "Remove a model's policy (it falls back to the default)",
    auth="control_plane",
    success={200: ok("deleted")},
    errors=(404, *COMMIT),
)

# operations (admin) ----------------------------------------------------------------------------
op(
    "POST",
    "/flush_cache",
    "flushCache",
    "admin",
    "Flush every ready worker's cache",
    auth="control_plane",
    success={200: ok("every worker flushed"), 206: ok("some workers failed; see results")},
)
op(
    "GET",
    "/get_loads",
    "getLoads",
    "admin",
    "Every ready worker's load",
    auth="control_plane",
    success={200: ok("per-worker loads")},
)
op(
    "GET",
    "/info",
    "info",
    "admin",
    "Version, effective config (secrets masked), metrics summary",
    auth="control_plane",
    success={200: ok("node information")},
)
op(
    "GET",
    "/admin/config",
    "getRuntimeConfig",
    "admin",
    "The effective runtime settings and the committed overrides",
    auth="control_plane",
    success={200: ok("config, overrides, version, runtime_settings")},
)
op(
    "PUT",
    "/admin/config",
    "putRuntimeConfig",
    "admin",
    "Change runtime settings on every node (committed)",
    auth="control_plane",
    body=ref("RuntimeSettings"),
    success={200: ok("committed")},
    errors=(409, *COMMIT),
)
op(
    "POST",
    "/admin/reload",
    "reloadConfig",
    "admin",
    "Re-read --config and commit the runtime settings that changed",
    auth="control_plane",
    success={200: ok("applied, or nothing changed")},
    errors=(400, 409, *COMMIT),
    description="409: the node was started without --config.",
)
op(
    "GET",
    "/admin/circuit-breaker",
    "getCircuitBreakers",
    "admin",
    "Circuit-breaker state of every worker, per node",
    auth="control_plane",
    success={200: ok("breakers by node")},
)
op(
    "POST",
    "/admin/circuit-breaker/reset",
    "resetCircuitBreakers",
    "admin",
    "Reset one worker's circuit breaker, or all (on every node)",
    auth="control_plane",
    body=ref("BreakerReset"),
    body_required=False,
    success={200: ok("committed")},
    errors=(404, *COMMIT),
)

# ha --------------------------------------------------------------------------------------------
op(
    "GET",
    "/ha/local",
    "haLocal",
    "ha",
    "This node's own report (for peers and operators)",
    auth="mesh",
    success={200: ok("the report")},
)
op(
    "GET",
    "/ha/status",
    "haStatus",
    "ha",
    "The mesh: nodes, roles, leader, quorum, stores",
    auth="control_plane",
    success={200: ok("mesh status")},
)
op(
    "GET",
    "/ha/health",
    "haHealth",
    "ha",
    "Is the mesh healthy from here?",
    auth="control_plane",
    success={200: ok("healthy"), 503: ok("unhealthy; reasons say why")},
)
op(
    "GET",
    "/ha/workers",
    "haListWorkers",
    "ha",
    "Replicated worker records with each node's view of their health",
    auth="control_plane",
    success={200: ok("workers")},
)
op(
    "GET",
    "/ha/workers/{worker_id}",
    "haGetWorker",
    "ha",
    "One replicated worker record",
    auth="control_plane",
    success={200: ok("the worker")},
    errors=(400, 404),
)
op(
    "GET",
    "/ha/policies",
    "haListPolicies",
    "ha",
    "Replicated policies",
    auth="control_plane",
    success={200: ok("policies")},
)
op(
    "GET",
    "/ha/policies/{model_id}",
    "haGetPolicy",
    "ha",
    "One replicated policy",
    auth="control_plane",
    success={200: ok("the policy")},
    errors=(404,),
)
op(
    "GET",
    "/ha/config",
    "haListConfig",
    "ha",
    "Replicated config keys",
    auth="control_plane",
    success={200: ok("config keys")},
)
op(
    "GET",
    "/ha/config/{key}",
    "haGetConfig",
    "ha",
    "One config key",
    auth="control_plane",
    success={200: ok("key, value, version")},
    errors=(404,),
)
op(
    "POST",
    "/ha/config",
    "haSetConfig",
    "ha",
    "Write a config key (committed)",
    auth="control_plane",
    body=ref("ConfigSet"),
    success={200: ok("committed")},
    errors=(409, *COMMIT),
)
op(
    "DELETE",
    "/ha/config/{key}",
    "haDeleteConfig",
    "ha",
    "Delete a config key (committed)",
    auth="control_plane",
    params=(query("expected_version", "the key's current version", {"type": "string"}),),
    success={200: ok("deleted")},
    errors=(400, 404, 409, *COMMIT),
)
op(
    "GET",
    "/ha/rate-limit",
    "haGetRateLimits",
    "ha",
    "Mesh-wide rate-limit rules",
    auth="control_plane",
    success={200: ok("rules, backend, serving_nodes")},
)
op(
    "POST",
    "/ha/rate-limit",
    "haSetRateLimit",
    "ha",
    "Set (or, with null, remove) a mesh-wide rate limit",
    auth="control_plane",
    body=ref("RateLimitSet"),
    success={200: ok("the rule, or deleted")},
    errors=(404, 409, *COMMIT),
)
op(
    "GET",
    "/ha/rate-limit/stats",
    "haRateLimitStats",
    "ha",
    "Every node's rate-limit counters, added up per scope",
    auth="control_plane",
    success={200: ok("scopes, nodes")},
)
op(
    "DELETE",
    "/ha/rate-limit/{scope}",
    "haDeleteRateLimit",
    "ha",
    "Remove a rate-limit rule",
    auth="control_plane",
    success={200: ok("deleted")},
    errors=(404, *COMMIT),
)
op(
    "POST",
    "/ha/shutdown",
    "haShutdown",
    "ha",
    "Drain and stop this node, another member, or the whole mesh",
    auth="control_plane",
    body=ref("Shutdown"),
    body_required=False,
    success={202: ok("accepted: each target drains, then exits")},
    errors=(404, 409, *COMMIT),
)
op(
    "POST",
    "/ha/drain",
    "haDrain",
    "ha",
    "Set or clear draining (not ready, finishes in-flight work) on members",
    auth="control_plane",
    body=ref("Drain"),
    success={200: ok("targets, draining")},
    errors=(404, *COMMIT),
)
op(
    "POST",
    "/ha/members",
    "haAddMember",
    "ha",
    "Add a Raft voter (the new node must be running)",
    auth="control_plane",
    body=ref("MemberAdd"),
    success={200: ok("added")},
    errors=(409, *COMMIT),
)
op(
    "DELETE",
    "/ha/members/{name}",
    "haRemoveMember",
    "ha",
    "Remove another member from the mesh",
    auth="control_plane",
    success={200: ok("removed")},
    errors=(404, 409, *COMMIT),
)

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
    errors=(401,),
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
    ),
    success={200: ok("node, entries")},
    errors=(400,),
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
    auth="management",
    body=ref("KeyCreate"),
    success={201: ok("the key")},
    errors=(403, 404, 409, *COMMIT),
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
    errors=(403, 404, 409, *COMMIT),
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
        {"success": {201: ok("published")}, "body": ref("Publish"), "errors": (409, *COMMIT)},
    ),
    ("GET", "getPublication", "A deployment's publication", {"success": {200: ok("it")}}),
    (
        "PUT",
        "updatePublication",
        "Change a publication",
        {"success": {200: ok("updated")}, "body": ref("Publish"), "errors": (409, *COMMIT)},
    ),
    (
        "DELETE",
        "unpublish",
        "Unpublish a deployment",
        {"success": {200: ok("unpublished")}, "errors": COMMIT},
    ),
):
    op(
        _method,
        "/api/models/{name}/publish",
        _id,
        "management",
        _summary,
        auth="management",
        params=(NAMESPACE,),
        **{**_extra, "errors": (400, 403, 404, *_extra.get("errors", ()))},
    )
op(
    "POST",
    "/api/models/{name}/publish/rotate-key",
    "rotatePublicationKey",
    "management",
    "Replace a publication's key",
    auth="management",
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


def _build() -> Schema:
    paths: dict[str, dict[str, Schema]] = {}
    for path, method, operation in OPERATIONS:
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meshgate",
            "version": __version__,
            "description": "An LLM inference gateway that runs as a highly available mesh of "
            "identical nodes. Every node serves every route; control-plane writes are Raft "
            "commands, acknowledged once committed. Control-plane and management bodies are "
            f"JSON objects nested at most {MAX_DEPTH} levels deep (400 otherwise).",
        },
        "tags": [
            {"name": "inference", "description": "clients: OpenAI/SGLang-compatible inference"},
            {"name": "workers", "description": "operators: the workers behind the gateway"},
            {"name": "policies", "description": "operators: routing policies per model"},
            {"name": "ha", "description": "operators: the mesh, its config and its levers"},
            {"name": "admin", "description": "operators: runtime settings, breakers, fan-outs"},
            {"name": "management", "description": "tenants and admins: keys, models, publishing"},
            {"name": "probes", "description": "load balancers and monitoring"},
        ],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


DOCUMENT: Final[Schema] = _build()
_BODY: Final = orjson.dumps(DOCUMENT)


async def openapi_json(_: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")


def install(app: web.Application) -> None:
    app.router.add_get(PATH, openapi_json)
