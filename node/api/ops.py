"""Operations: `/flush_cache` and `/get_loads` (control plane), `/metrics` (public).

The two fan-outs ask every ready worker at once and report each worker's
answer, so a partial failure is visible (206) rather than hidden. An HTTP worker
is asked `POST /flush_cache` and `GET /get_load`; a gRPC worker FlushCache and
GetLoads.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.api.common import json_response, node_of
from node.api.table import Audience, Route, plain_text
from node.app import Node
from node.auth import Principal
from node.grpc_workers.calls import GrpcCallFailed
from node.proxy.failures import REDIRECTED, log_failure
from node.workers.client import WorkerCallFailed
from node.workers.worker import Worker


async def _call(node: Node, worker: Worker, method: str, path: str) -> dict[str, Any]:
    result: dict[str, Any] = {"worker_id": worker.id, "url": worker.url}
    timeout = node.config.health_check_timeout_secs * 2
    if worker.connection_mode == "grpc":
        return {**result, **await _call_grpc(node, worker, path, timeout)}
    try:
        answer = await node.worker_client.call(method, worker.target, path, timeout=timeout)
    except WorkerCallFailed as exc:
        log_failure(worker.id, worker.url, f"{method} {path}", exc.detail)
        return {**result, "success": False, "error": str(exc)}
    result["status"] = answer.status
    result["success"] = answer.ok
    if answer.redirected:
        result["error"] = REDIRECTED
        return result
    body = answer.json()
    result["response"] = body if body is not None or not answer.body else answer.text(1000)
    return result


async def _call_grpc(node: Node, worker: Worker, path: str, timeout: float) -> dict[str, Any]:
    """The gRPC counterpart of `path`: FlushCache or GetLoads."""
    grpc = node.grpc_workers
    try:
        if path == "/flush_cache":
            answer = await grpc.flush_cache(worker, timeout)
            return {"success": answer["success"], "response": answer}
        return {"success": True, "response": await grpc.get_load(worker, timeout)}
    except GrpcCallFailed as exc:
        log_failure(worker.id, worker.url, exc.method, exc.detail)
        return {"success": False, "error": str(exc)}


def _targets(node: Node) -> list[Worker]:
    return [w for w in node.pool.all() if w.status == "ready"]


async def flush_cache(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    results = await asyncio.gather(
        *(_call(node, w, "POST", "/flush_cache") for w in _targets(node))
    )
    failed = [r for r in results if not r["success"]]
    body = {
        "status": "partial" if failed else "ok",
        "total_workers": len(results),
        "successful": len(results) - len(failed),
        "failed": len(failed),
        "results": list(results),
    }
    return json_response(body, 206 if failed else 200)


async def get_loads(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    results = await asyncio.gather(*(_call(node, w, "GET", "/get_load") for w in _targets(node)))
    loads = []
    for result in results:
        worker = node.pool.get(result["worker_id"])
        loads.append(
            {
                "worker_id": result["worker_id"],
                "url": result["url"],
                "gateway_in_flight": worker.load if worker else 0,
                "load": result.get("response") if result["success"] else None,
                **(
                    {"error": result.get("error") or f"status {result.get('status')}"}
                    if not result["success"]
                    else {}
                ),
            }
        )
    return json_response({"node": node.name, "workers": loads})


async def metrics(request: web.Request) -> web.Response:
    body = node_of(request).metrics.render()
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/metrics",
        metrics,
        Audience.PUBLIC,
        "metrics",
        "probes",
        "Prometheus metrics of this node",
        answers={200: plain_text("Prometheus text format")},
    ),
    Route(
        "POST",
        "/flush_cache",
        flush_cache,
        Audience.CONTROL_PLANE,
        "flushCache",
        "admin",
        "Flush every ready worker's cache",
        answers={200: "every worker flushed", 206: "some workers failed; see results"},
        current_first=False,  # asks the workers; changes no control state
    ),
    Route(
        "GET",
        "/get_loads",
        get_loads,
        Audience.CONTROL_PLANE,
        "getLoads",
        "admin",
        "Every ready worker's load",
        answers={200: "per-worker loads"},
    ),
)
