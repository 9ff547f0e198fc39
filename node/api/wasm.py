"""WASM middleware (seeds 000, 001): `POST /wasm`, `GET /wasm`, `PATCH` and `DELETE
/wasm/{module_uuid}`; all of them 404 naming the flag without --enable-wasm.

`POST` reads each component on this node (`file_path`, SMG's form, or `wasm_base64`),
compiles and checks it, keeps it in the blob store and commits the records naming them
by digest, all in one command: every node then fetches them from a peer, compiles each
once and runs it (node/wasm/registry.py). A bad module gets a 400 and nothing enters the
log; what a refused or uncommitted request stored is removed again.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from mesh.commands import (
    WASM_ATTACH_POINTS,
    WASM_BATCH_MOST,
    WASM_MEMORY_BYTES,
    WASM_NAME_LIMIT,
    WASM_ORDER_MOST,
    WASM_TIMEOUT_MS,
)
from node.api.bodies import Body, read_body, whole
from node.api.common import json_response, node_of
from node.api.node_views import node_views, summary
from node.api.table import COMMIT, Audience, Route
from node.app import Node
from node.auth import Principal
from node.errors import ApiError
from node.wasm.holds import Taking

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*"
PATH_LIMIT = 4096
TimeoutMs = Annotated[int, Meta(ge=WASM_TIMEOUT_MS[0], le=WASM_TIMEOUT_MS[1])]
MemoryBytes = Annotated[int, Meta(ge=WASM_MEMORY_BYTES[0], le=WASM_MEMORY_BYTES[1])]
Order = Annotated[int, Meta(ge=0, le=WASM_ORDER_MOST)]


class ModuleLimits(Body):
    timeout_ms: TimeoutMs | None = None
    memory_bytes: MemoryBytes | None = None


class ModuleSpec(Body):
    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=WASM_NAME_LIMIT,
            pattern=whole(NAME_PATTERN),
            description=f"1-{WASM_NAME_LIMIT} letters, digits and . _ : / @ + -; unique",
        ),
    ]
    attach_points: Annotated[
        list[dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=64)]]],
        Meta(
            min_length=1,
            max_length=2,
            description='[{"Middleware": "OnRequest"}] and/or {"Middleware": "OnResponse"}',
        ),
    ]
    module_type: Literal["Middleware"] = "Middleware"
    file_path: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=PATH_LIMIT,
                description="read by the node that takes the request",
            ),
        ]
        | None
    ) = None
    wasm_base64: str | None = None  # the component itself, instead of a file_path
    sha256: Annotated[str, Meta(pattern=whole("[0-9a-f]{64}"))] | None = None
    order: Order | None = None
    enabled: bool = True
    on_error: Literal["fail", "continue"] = "fail"
    limits: ModuleLimits | None = None


class ModulesCreate(Body):
    modules: Annotated[list[ModuleSpec], Meta(min_length=1, max_length=WASM_BATCH_MOST)]


class ModuleUpdate(Body):
    enabled: bool | None = None
    order: Order | None = None
    on_error: Literal["fail", "continue"] | None = None
    limits: ModuleLimits | None = None


def _enabled(node: Node) -> None:
    if node.wasm is None:
        raise ApiError(
            404,
            "WASM middleware is off on this node: start it with --enable-wasm",
            code="WASM_DISABLED",
        )


def resolve_module(node: Node, request: web.Request) -> dict[str, Any]:
    """The one resolver for every `/wasm/{module_uuid}` route."""
    _enabled(node)
    raw = request.match_info["module_uuid"]
    try:
        module_id = str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(
            400, f"{raw[:80]!r} is not a module id (a UUID)", param="module_uuid"
        ) from None
    record = node.raft.state.wasm_modules.get(module_id)
    if record is None:
        raise ApiError(404, f"WASM module {module_id} not found", code="WASM_MODULE_NOT_FOUND")
    return record


def _points(record: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Middleware": point} for point in record["attach_points"]]


def _view(node: Node, record: dict[str, Any]) -> dict[str, Any]:
    assert node.wasm is not None
    views = node_views(node, "wasm", record["id"], node.wasm.status(record["id"]))
    return {
        **record,
        "module_type": "Middleware",
        "attach_points": _points(record),
        "status": summary(views),
        "nodes": views,
    }


# -- taking a module in ------------------------------------------------------------------


async def _take(node: Node, spec: ModuleSpec, taking: Taking) -> dict[str, Any]:
    """Read, check and store one module's component (held by `taking` until its record
    names it): the `wasm.add` spec naming it."""
    from node.wasm import intake  # wasmtime loads only with --enable-wasm

    limit = node.config.wasm_max_module_bytes
    if (spec.file_path is None) == (spec.wasm_base64 is None):
        raise ApiError(
            400,
            "give the component as file_path or as wasm_base64 (one of them)",
            param="file_path",
        )
    points = _attach_points(spec.attach_points)
    given = _given(spec.limits) if spec.limits else {}
    limits = {
        "timeout_ms": given.get("timeout_ms", node.config.wasm_timeout_ms),
        "memory_bytes": given.get("memory_bytes", node.config.wasm_memory_bytes),
    }
    try:
        if spec.file_path is not None:
            data = await asyncio.to_thread(intake.read_file, spec.file_path, limit)
            field = "file_path"
        else:
            data = intake.decode_upload(spec.wasm_base64 or "", limit)
            field = "wasm_base64"
        checked = await asyncio.to_thread(intake.check, data, spec.sha256, points, field, limits)
    except intake.IntakeError as exc:
        raise ApiError(400, f"module {spec.name!r}: {exc}", param=exc.param) from None
    taking(checked.digest)  # before it is stored: another request's cleanup keeps it
    assert node.wasm is not None
    await asyncio.to_thread(node.blobs.put_bytes, checked.data)
    await asyncio.to_thread(node.wasm.artifacts.keep, checked.digest, checked.compiled)
    return {
        "id": str(uuid.uuid4()),
        "name": spec.name,
        "sha256": checked.digest,
        "size": len(checked.data),
        "attach_points": points,
        "order": spec.order,
        "enabled": spec.enabled,
        "on_error": spec.on_error,
        "limits": limits,
    }


def _given(body: Body) -> dict[str, Any]:
    """The fields a body gave (a None is a field left out)."""
    return {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}


def _attach_points(given: list[dict[str, str]]) -> list[str]:
    """SMG's `[{"Middleware": "OnRequest"}]` as the points, or a 400 naming the one at fault."""
    points = []
    for entry in given:
        point = entry.get("Middleware") if list(entry) == ["Middleware"] else None
        if point not in WASM_ATTACH_POINTS:
            raise ApiError(
                400,
                f'unknown attach point {entry!r}: give {{"Middleware": "OnRequest"}} '
                'or {"Middleware": "OnResponse"}',
                param="attach_points",
            )
        points.append(str(point))
    if len(set(points)) != len(points):
        raise ApiError(400, "attach_points names an attach point twice", param="attach_points")
    return points


# -- handlers ----------------------------------------------------------------------------


async def list_modules(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    _enabled(node)
    records = sorted(
        node.raft.state.wasm_modules.values(), key=lambda r: (r["order"], r["created_at"])
    )
    return json_response(
        {
            "modules": [_view(node, r) for r in records],
            "total": len(records),
            "applied_index": node.raft.state.applied_index,
        }
    )


async def add_modules(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    _enabled(node)
    body = await read_body(request, ModulesCreate)
    names = [m.name for m in body.modules]
    if len(set(names)) != len(names):
        raise ApiError(400, "two modules of the request have the same name", param="modules")
    for name in names:  # before reading anything; the commit decides a race
        taken = node.raft.state.wasm_named(name)
        if taken is not None:
            raise ApiError(
                409,
                f"a WASM module named {name!r} already exists",
                code="CONFLICT",
                extra={"module_id": taken["id"]},
            )
    assert node.wasm is not None
    specs: list[dict[str, Any]] = []
    with node.wasm.holds.taking_in() as taking:
        committing = False
        try:
            for module in body.modules:  # every one checked before any is committed
                specs.append(await _take(node, module, taking))
            committing = True
            value = await node.commit("wasm.add", {"modules": specs}, principal)
        except BaseException as exc:
            # Refused or never committed: nothing names what was stored. An unknown
            # outcome keeps it: the records may be applied, and this copy is the only one.
            known = isinstance(exc, ApiError) and exc.extra.get("outcome") != "unknown"
            if not committing or known:
                node.wasm.drop_unused(taking.release())
            raise
    results = []
    for module, spec, module_id in zip(body.modules, specs, value["module_ids"], strict=True):
        shown = {"name": module.name, "module_type": "Middleware", "attach_points": _points(spec)}
        if module.file_path is not None:
            shown["file_path"] = module.file_path
        results.append({**shown, "sha256": spec["sha256"], "add_result": {"Success": module_id}})
    return json_response({"modules": results, "success": True})


async def update_module(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    record = resolve_module(node, request)
    body = await read_body(request, ModuleUpdate)
    changes = _given(body)
    if "limits" in changes:
        changes["limits"] = _given(changes["limits"])
    if not changes or changes.get("limits") == {}:
        raise ApiError(400, "name at least one of enabled, order, on_error, limits to change")
    await node.commit("wasm.update", {"id": record["id"], "changes": changes}, principal)
    return json_response(_view(node, node.raft.state.wasm_modules[record["id"]]))


async def delete_module(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    record = resolve_module(node, request)
    await node.commit("wasm.remove", {"id": record["id"]}, principal)
    return json_response({"status": "deleted", "id": record["id"], "name": record["name"]})


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/wasm",
        list_modules,
        Audience.CONTROL_PLANE,
        "listWasmModules",
        "wasm",
        "Every WASM module, with each node's status (pending, ready, failed) and breaker",
        answers={200: "modules, total, applied_index"},
        errors=(404,),
    ),
    Route(
        "POST",
        "/wasm",
        add_modules,
        Audience.CONTROL_PLANE,
        "addWasmModules",
        "wasm",
        "Register WASM middleware (by file_path on this node, or base64); every node runs it",
        answers={200: "modules, each with add_result {Success: module id}"},
        errors=(404, 409, *COMMIT),
        body=ModulesCreate,
    ),
    Route(
        "PATCH",
        "/wasm/{module_uuid}",
        update_module,
        Audience.CONTROL_PLANE,
        "updateWasmModule",
        "wasm",
        "Change a module's order, enabled flag, on_error or limits, on every node",
        answers={200: "the module"},
        errors=(400, 404, *COMMIT),
        body=ModuleUpdate,
    ),
    Route(
        "DELETE",
        "/wasm/{module_uuid}",
        delete_module,
        Audience.CONTROL_PLANE,
        "deleteWasmModule",
        "wasm",
        "Remove a module everywhere (calls already running finish)",
        answers={200: "deleted"},
        errors=(400, 404, *COMMIT),
    ),
)
