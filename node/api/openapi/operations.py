"""The node's operations: probes, inference, workers, policies, operations, /ha, /admin."""

from __future__ import annotations

import re
from typing import Final

from node.api.openai import INFERENCE_ROUTES
from node.api.openapi.schemas import AUTH, ERROR_NAMES, Schema, ref, string

# -- operations ------------------------------------------------------------------------------------

SEGMENT: Final = "^[^{}]+$"  # the router matches no '{' or '}' in a path parameter
_PATH_PARAMS: Final[dict[str, Schema]] = {
    "worker_id": string("the worker's id (a UUID)", format="uuid", pattern=SEGMENT),
    "model_id": string("a model id ('*': the mesh-wide default)", pattern=SEGMENT),
    "key": string("a config key (may contain '/')", minLength=1),
    "scope": string("a rate-limit scope: a model id, or '*' for the global rule", pattern=SEGMENT),
    "name": string(pattern=SEGMENT),
    "key_id": string("a managed API key's id", pattern=SEGMENT),
    "username": string("an admin login's username", pattern=SEGMENT),
    "request_id": string(
        "a request id, from an error body or the Meshgate-Request-Id header",
        pattern=SEGMENT,
        maxLength=200,
    ),
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
IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "names this write: a retry with the same key (through any node, by the "
    "same caller, on the same method and path) is applied at most once and answered from the "
    "first attempt's outcome (Idempotent-Replayed: true). Remembered at least 10 minutes",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
}
COMMIT_TEXT: Final = (
    "Commits a Raft command. An error body says what became of it: `outcome` is "
    "`rejected` (applied as a refusal: nothing changed), `not_committed` (503: it never "
    "will be applied; retry) or `unknown` (503, 504: it may have been applied, though never "
    "after anything sent later; retry with the same Idempotency-Key, or ask "
    "GET /ha/requests/{request_id} with `expires_at`), with `request_id`. The answer's "
    "Meshgate-Request-Id header names the first command's request id."
)


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
    """Add one operation; the auth group's and the body's own errors are added here, and,
    on an operation that commits (one answering 503 that is not a GET or a relay), the
    Idempotency-Key header and its 400."""
    security, auth_errors, auth_text = AUTH[auth]
    management = path.startswith("/api/")
    codes = set(errors) | set(auth_errors)
    if body is not None:
        codes |= {400, 413}
    if method.upper() != "GET" and not relayed and 503 in codes:
        codes |= {400}
        params = (*params, IDEMPOTENCY_KEY)
        description = (description + "\n\n" if description else "") + COMMIT_TEXT
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
        responses[str(code)] = {"$ref": f"#/components/responses/{prefix}{ERROR_NAMES[code]}"}
    if relayed:
        responses["default"] = {
            "description": "the worker's own answer, relayed unchanged (any status, its body)"
        }
    operation["responses"] = responses
    OPERATIONS.append((path, method.lower(), operation))


# Every write is a Raft command: not committed -> 503; outcome unknown -> 503, or 504 when
# the wait ran out; both with Retry-After.
COMMIT: Final = (503, 504)

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
    "Add a Raft voter (the new node must be running: its Raft port is probed first)",
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
    "Remove another member from the mesh (one that does not answer needs force=true)",
    auth="control_plane",
    params=(
        query(
            "force",
            "true: remove a member that will never come back, although it does not answer",
            {"type": "string", "enum": ["true", "false"]},
        ),
    ),
    success={200: ok("removed")},
    errors=(400, 404, 409, *COMMIT),
)
op(
    "GET",
    "/ha/requests/{request_id}",
    "haRequestOutcome",
    "ha",
    "Whether a write's request id was applied, and with what outcome",
    auth="control_plane",
    params=(
        query(
            "expires_at",
            "the expires_at of an attempt answered 'unknown' (repeat it for each attempt); "
            "with it the answer can be 'not_applied'",
            {"type": "number"},
        ),
    ),
    success={
        200: ok(
            "status: applied (with ok and outcome), not_applied (never was, never will be) or "
            "unknown (not applied as of applied_index; can_still_apply and remembered_since "
            "say whether it still may be or may have been forgotten)"
        )
    },
    errors=(400,),
    description="Request ids are remembered for the last 4096 commands and at least 10 minutes "
    "of log time (at most 20000), and always while a copy of the command may still be applied.",
)
