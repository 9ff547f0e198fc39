"""The document, generated from the route table: one operation per `Route`."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final

import orjson

from node import __version__
from node.api.bodies import schema_components
from node.api.catalog import ROUTES
from node.api.common import MAX_DEPTH
from node.api.openapi.schemas import (
    AUTH,
    ERROR_NAMES,
    RESPONSES,
    SCHEMAS,
    SECURITY_SCHEMES,
    Schema,
    ref,
    string,
)
from node.api.table import CONSISTENT, Query, Route

SEGMENT: Final = "^[^{}]+$"  # the router matches no '{' or '}' in a path parameter
_PATH_PARAMS: Final[dict[str, Schema]] = {
    "worker_id": string("the worker's id (a UUID)", format="uuid", pattern=SEGMENT),
    "tokenizer_id": string("the tokenizer's id (a UUID)", format="uuid", pattern=SEGMENT),
    "module_uuid": string("the WASM module's id (a UUID)", format="uuid", pattern=SEGMENT),
    "sha256": string("a blob's SHA-256: 64 lower-case hex digits", pattern="^[0-9a-f]{64}$"),
    "model_id": string("a model id ('*': the mesh-wide default)", pattern=SEGMENT),
    "key": string("a config key (may contain '/')", minLength=1),
    "model": string("a model id (may contain '/')", minLength=1),
    "scope": string("a rate-limit scope: a model id, or '*' for the global rule", pattern=SEGMENT),
    "name": string(pattern=SEGMENT),
    "key_id": string("a managed API key's id", pattern=SEGMENT),
    "username": string("an admin login's username", pattern=SEGMENT),
    "path": string(
        "a console file under /ui/ (app.js, lib/api.js; empty: the page)", maxLength=200
    ),
    "request_id": string(
        "a request id, from an error body or the Meshgate-Request-Id header",
        pattern=SEGMENT,
        maxLength=200,
    ),
}
IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "names this write: a retry with the same key (through any node, by the "
    "same caller, on the same method and path) is applied at most once and answered from the "
    "first attempt's outcome (Idempotent-Replayed: true). Remembered at least 10 minutes",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
}
MIN_INDEX: Final = {
    "name": "X-Meshgate-Min-Index",
    "in": "header",
    "required": False,
    "description": "the X-Meshgate-Index of an earlier answer: this node first waits (at most "
    "--min-index-wait-secs) until it has applied that far, else answers 503 with Retry-After. "
    "Every answer carries X-Meshgate-Index",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}
COMMIT_TEXT: Final = (
    "Commits a Raft command. An error body says what became of it: `outcome` is "
    "`rejected` (applied as a refusal: nothing changed), `not_committed` (503: it never "
    "will be applied; retry) or `unknown` (503, 504: it may have been applied, though never "
    "after anything sent later; retry with the same Idempotency-Key, or ask "
    "GET /ha/requests/{request_id} with `expires_at`), with `request_id`. The answer's "
    "Meshgate-Request-Id header names the first command's request id."
)


def _query(param: Query) -> Schema:
    return {
        "name": param.name,
        "in": "query",
        "required": False,
        "description": param.description,
        "schema": param.schema or {"type": "string"},
    }


def _answer(answer: str | Schema) -> Schema:
    if isinstance(answer, str):
        return {"description": answer, "content": {"application/json": {"schema": ref("Object")}}}
    return answer


def _body_schema(body: str | type) -> Schema:
    return ref(body if isinstance(body, str) else body.__name__)


def operation(route: Route) -> Schema:
    """The OpenAPI operation of one route: the audience's and the body's own errors are added
    here, and, on a route that commits (one answering 503 that is not a GET or a relay), the
    Idempotency-Key header and its 400."""
    security, auth_errors, auth_text = AUTH[route.audience.value]
    codes = set(route.errors) | set(auth_errors)
    params: list[Schema] = [_query(q) for q in route.query]
    description = route.description
    if route.body is not None:
        codes |= {400, 413}
    if route.reads_control_state:
        params.append(MIN_INDEX)
        codes |= {400, 503}
    if route.takes_consistent:
        params.append(_query(CONSISTENT))
    if route.method != "GET" and not route.relayed and 503 in codes:
        codes |= {400}
        params.append(IDEMPOTENCY_KEY)
        description = (description + "\n\n" if description else "") + COMMIT_TEXT
    result: Schema = {
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "description": (description + "\n\n" if description else "") + f"Auth: {auth_text}.",
        "security": security,
        "x-meshgate-auth": route.audience.value,
    }
    path_params = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS[name]}
        for name in re.findall(r"{(\w+)}", route.documented_path)
    ]
    if path_params or params:
        result["parameters"] = [*path_params, *params]
    if route.body is not None:
        result["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": _body_schema(route.body)}},
        }
    responses = {str(code): _answer(answer) for code, answer in sorted(route.answers.items())}
    prefix = "Api" if route.envelope == "management" else ""
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/{prefix}{ERROR_NAMES[code]}"}
    if route.relayed:
        responses["default"] = {
            "description": "the worker's own answer, relayed unchanged (any status, its body)"
        }
    result["responses"] = responses
    return result


def build(routes: Iterable[Route]) -> Schema:
    routes = tuple(routes)
    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        paths.setdefault(route.documented_path, {})[route.method.lower()] = operation(route)
    typed = {route.body for route in routes if isinstance(route.body, type)}
    schemas = {**SCHEMAS, **schema_components(sorted(typed, key=lambda kind: kind.__name__))}
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
            {"name": "tokenizers", "description": "operators: the replicated tokenizer registry"},
            {"name": "wasm", "description": "operators: WASM middleware (with --enable-wasm)"},
            {"name": "ha", "description": "operators: the mesh, its config and its levers"},
            {"name": "admin", "description": "operators: runtime settings, breakers, fan-outs"},
            {"name": "management", "description": "tenants and admins: keys, models, publishing"},
            {"name": "probes", "description": "load balancers and monitoring"},
        ],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": RESPONSES,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@functools.cache
def document() -> Schema:
    """The document of the installed routes, built on first use: building it takes ~70 ms,
    which every node start would pay for a route few clients call."""
    return build(ROUTES)


@functools.cache
def body() -> bytes:
    """The document's JSON bytes, encoded once."""
    return orjson.dumps(document())
