"""The admin API (seed 004): readiness, info, runtime config, reload, circuit breakers.

Unlike the seed, nothing here is a stub: `PUT /admin/config` and
`POST /admin/reload` commit the change to the Raft log and every node applies
it at once; `POST /admin/circuit-breaker/reset` is a committed intent that
every node carries out on its own breakers.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from aiohttp import web
from msgspec import Meta

from node import __version__
from node.api.bodies import Body, read_body
from node.api.common import json_object, json_response, node_of
from node.api.health import readiness_of
from node.api.table import COMMIT, Audience, Route
from node.app import Node
from node.auth import Principal
from node.config import ConfigError, read_config_file
from node.errors import ApiError
from node.runtime import RUNTIME_KEY, RUNTIME_SETTINGS, effective, validate_overrides
from node.workers.breaker import CLOSED


def _uptime(node: Node) -> float:
    return round(time.time() - node.started_at, 3)


def _breaker_summary(node: Node) -> str:
    states = {w.breaker.state for w in node.pool.all()}
    if not states or states == {CLOSED}:
        return "closed"
    return "open" if CLOSED not in states else "partially_open"


async def ready(request: web.Request) -> web.Response:
    node = node_of(request)
    problems = readiness_of(node)
    body = {
        "ready": not problems,
        "circuit_breaker": _breaker_summary(node),
        "healthy_workers": sum(1 for w in node.pool.all() if w.routable),
        "version": __version__,
        "uptime_seconds": _uptime(node),
        "reasons": problems,
    }
    return json_response(body, 503 if problems else 200)


async def info(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    return json_response(
        {
            "version": __version__,
            "api_version": "v1",
            "node": node.name,
            "uptime_seconds": _uptime(node),
            "config": {**node.config.public(), **effective(node.config, node.runtime_overrides())},
            "runtime_overrides": node.runtime_overrides(),
            "circuit_breaker_enabled": not effective(node.config, node.runtime_overrides())[
                "disable_circuit_breaker"
            ],
            "metrics": node.metrics.summary(),
            "raft": {
                "role": node.raft.status().role,
                "applied_index": node.raft.state.applied_index,
            },
        }
    )


def _config_view(node: Node) -> dict[str, Any]:
    record = node.raft.state.config.get(RUNTIME_KEY)
    return {
        "config": effective(node.config, node.runtime_overrides()),
        "overrides": node.runtime_overrides(),
        "version": record["version"] if record else 0,
        "runtime_settings": list(RUNTIME_SETTINGS),
    }


async def get_config(request: web.Request, _: Principal) -> web.Response:
    return json_response(_config_view(node_of(request)))


async def _commit_overrides(
    node: Node, changes: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    try:
        checked = validate_overrides(changes)
    except ConfigError as exc:
        raise ApiError(400, str(exc), param=str(exc).split(":", 1)[0]) from None
    record = node.raft.state.config.get(RUNTIME_KEY)
    merged = {**node.runtime_overrides(), **checked}
    args = {
        "key": RUNTIME_KEY,
        "value": merged,
        "expected_version": record["version"] if record else 0,
    }
    value = await node.commit("config.set", args, principal)
    return {"updated_fields": sorted(checked), "version": value["version"]}


async def put_config(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    changes = await json_object(request)
    if not changes:
        raise ApiError(400, "send at least one setting: " + ", ".join(RUNTIME_SETTINGS))
    result = await _commit_overrides(node, changes, principal)
    return json_response(
        {
            "success": True,
            "message": "configuration committed; every node applies it now",
            **result,
            **_config_view(node),
        }
    )


async def reload_config(request: web.Request, principal: Principal) -> web.Response:
    """Re-read --config and commit the runtime settings that differ from the effective ones."""
    node = node_of(request)
    path = node.config_file
    if not path:
        raise ApiError(409, "this node was started without --config; there is nothing to reload")
    try:
        from_file = read_config_file(path)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    current = effective(node.config, node.runtime_overrides())
    changes = {k: v for k, v in from_file.items() if k in RUNTIME_SETTINGS and v != current[k]}
    restart = sorted(
        k
        for k, v in from_file.items()
        if k not in RUNTIME_SETTINGS and getattr(node.config, k, v) != v
    )
    result = {"updated_fields": [], "version": None}
    if changes:
        result = await _commit_overrides(node, changes, principal)
    return json_response(
        {
            "success": True,
            "file": path,
            **result,
            "restart_required": restart,
            "message": "runtime settings applied on every node"
            if changes
            else "no runtime setting changed",
        }
    )


async def get_breakers(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    nodes: dict[str, Any] = {
        node.name: {w.id: {"url": w.url, **w.breaker.snapshot()} for w in node.pool.all()}
    }
    for name, view in node.peers.views.items():
        if view.reachable:
            nodes[name] = {
                wid: {"state": seen.get("circuit_breaker")}
                for wid, seen in view.report.get("workers", {}).items()
            }
        else:
            nodes[name] = {"unreachable": view.error}
    values = effective(node.config, node.runtime_overrides())
    return json_response(
        {
            "enabled": not values["disable_circuit_breaker"],
            "state": _breaker_summary(node),
            "nodes": nodes,
            "resets": node.raft.state.breaker_resets,
        }
    )


class BreakerReset(Body):
    worker_id: Annotated[
        str | None, Meta(description="a worker id; absent or null: every worker")
    ] = None


async def reset_breakers(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    worker_id = (await read_body(request, BreakerReset, optional=True)).worker_id
    value = await node.commit("breaker.reset", {"worker_id": worker_id}, principal)
    return json_response(
        {
            "success": True,
            "message": "every node resets its circuit breaker(s)",
            "worker_id": worker_id,
            "version": value["version"],
        }
    )


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/health/ready",
        ready,
        Audience.PUBLIC,
        "healthReady",
        "probes",
        "Readiness with circuit-breaker and worker detail",
        answers={200: "ready", 503: "not ready / not healthy; the body says why"},
    ),
    Route(
        "GET",
        "/info",
        info,
        Audience.CONTROL_PLANE,
        "info",
        "admin",
        "Version, effective config (secrets masked), metrics summary",
        answers={200: "node information"},
    ),
    Route(
        "GET",
        "/admin/config",
        get_config,
        Audience.CONTROL_PLANE,
        "getRuntimeConfig",
        "admin",
        "The effective runtime settings and the committed overrides",
        answers={200: "config, overrides, version, runtime_settings"},
    ),
    Route(
        "PUT",
        "/admin/config",
        put_config,
        Audience.CONTROL_PLANE,
        "putRuntimeConfig",
        "admin",
        "Change runtime settings on every node (committed)",
        answers={200: "committed"},
        errors=(409, *COMMIT),
        body="RuntimeSettings",
    ),
    Route(
        "POST",
        "/admin/reload",
        reload_config,
        Audience.CONTROL_PLANE,
        "reloadConfig",
        "admin",
        "Re-read --config and commit the runtime settings that changed",
        answers={200: "applied, or nothing changed"},
        errors=(400, 409, *COMMIT),
        description="409: the node was started without --config.",
    ),
    Route(
        "GET",
        "/admin/circuit-breaker",
        get_breakers,
        Audience.CONTROL_PLANE,
        "getCircuitBreakers",
        "admin",
        "Circuit-breaker state of every worker, per node",
        answers={200: "breakers by node"},
    ),
    Route(
        "POST",
        "/admin/circuit-breaker/reset",
        reset_breakers,
        Audience.CONTROL_PLANE,
        "resetCircuitBreakers",
        "admin",
        "Reset one worker's circuit breaker, or all (on every node)",
        answers={200: "committed"},
        errors=(404, *COMMIT),
        body=BreakerReset,
        body_required=False,
    ),
)
