"""The assembled document and `GET /openapi.json`."""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from node import __version__
from node.api.common import MAX_DEPTH
from node.api.openapi import management  # noqa: F401 - registers the /api operations
from node.api.openapi.operations import OPERATIONS
from node.api.openapi.schemas import PATH, RESPONSES, SCHEMAS, SECURITY_SCHEMES, Schema


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
