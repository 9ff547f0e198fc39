"""The inference API: OpenAI-compatible and SGLang-native routes, proxied to workers.

Protected routes pass auth, then the inference pipeline (`node.pipeline`).
Public model routes (`/v1/models`, `/get_model_info`, `/get_server_info`,
`/engine_metrics`) are answered from the pool or by asking workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from node.api.common import Handler, json_response, node_of
from node.app import Node
from node.errors import ApiError
from node.live.visibility import redact
from node.pipeline.request import InferenceRequest
from node.proxy.facts import parse_body
from node.proxy.failures import REDIRECTED, did_not_answer, log_failure
from node.proxy.upstream import is_redirect
from node.workers.worker import Worker

INFERENCE_ROUTES = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/rerank",
    "/rerank",
    "/generate",
    "/v1/messages",
    "/v1/classify",
    "/v1/responses",
)


def install(app: web.Application) -> None:
    for path in INFERENCE_ROUTES:
        app.router.add_post(path, inference_handler(path))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/get_model_info", get_model_info)
    app.router.add_get("/get_server_info", get_server_info)
    app.router.add_get("/engine_metrics", engine_metrics)


def inference_handler(path: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        node = node_of(request)
        pipeline = node.pipeline

        async def enter(started: float) -> InferenceRequest:
            principal = node.auth.protected(request)
            body = await request.read()
            return pipeline.request(request, principal, path, body, parse_body(body), started)

        return await pipeline.serve(request, path, enter)

    handle.__name__ = "inference_" + path.strip("/").replace("/", "_")
    return handle


# -- model and server information ----------------------------------------------------------


def _ready_workers(node: Node) -> list[Worker]:
    return [w for w in node.pool.all() if w.status == "ready" and w.connection_mode == "http"]


async def list_models(request: web.Request) -> web.Response:
    node = node_of(request)
    models: dict[str, dict[str, Any]] = {}
    for worker in node.pool.all():
        if worker.status != "ready":
            continue
        names = [worker.model_id] if worker.model_id else []
        names += [m for m in worker.record.get("metadata", {}).get("served_models", []) if m]
        for name in names:
            models.setdefault(
                name,
                {
                    "id": name,
                    "object": "model",
                    "created": int(worker.record["created_at"]),
                    "owned_by": "meshgate",
                },
            )
    return json_response({"object": "list", "data": sorted(models.values(), key=lambda m: m["id"])})


async def _get_json(node: Node, worker: Worker, path: str) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=node.config.health_check_timeout_secs)
    async with node.session.get(
        worker.base_url + path, headers=worker.auth_headers, timeout=timeout
    ) as resp:
        body = await resp.read()
        try:
            return resp.status, await resp.json(content_type=None) if body else None
        except ValueError:
            return resp.status, body.decode(errors="replace")


async def get_model_info(request: web.Request) -> web.Response:
    node = node_of(request)
    model = request.query.get("model")
    serving = node.pool.serving(model)
    if serving is None:
        raise ApiError(
            404,
            f"model {model!r} is not served by any worker",
            code="model_not_found",
            param="model",
        )
    workers = [w for w in serving if w.routable]
    if not workers:
        raise ApiError(
            503, "no healthy worker to ask", code="no_healthy_worker", headers={"Retry-After": "1"}
        )
    worker = min(workers, key=lambda w: w.load)
    try:
        status, body = await _get_json(node, worker, "/get_model_info")
    except (aiohttp.ClientError, TimeoutError) as exc:
        log_failure(worker.id, worker.url, "GET /get_model_info", exc)
        raise ApiError(502, f"worker {worker.id} {did_not_answer(exc)}") from None
    if is_redirect(status):
        raise ApiError(502, f"worker {worker.id}: {REDIRECTED}")
    return json_response(redact(body), status)  # public: no engine secret passes


async def get_server_info(request: web.Request) -> web.Response:
    node = node_of(request)
    workers = _ready_workers(node)

    async def one(worker: Worker) -> dict[str, Any]:
        shown: dict[str, Any] = {"worker_id": worker.id, "url": worker.url}
        try:
            status, body = await _get_json(node, worker, "/get_server_info")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log_failure(worker.id, worker.url, "GET /get_server_info", exc)
            return {**shown, "error": did_not_answer(exc)}
        if is_redirect(status):
            return {**shown, "status": status, "error": REDIRECTED}
        # Public route: an engine may list its own secrets (SGLang's server args hold its
        # api_key), and the node asked with the worker's credentials.
        return {**shown, "status": status, "info": redact(body)}

    results = await asyncio.gather(*(one(w) for w in workers))
    return json_response(
        {
            "gateway": {
                **node.info(),
                "policy": node.selector.record_for(None)["policy"],
                "models": node.pool.models(),
                "applied_index": node.raft.state.applied_index,
            },
            "workers": list(results),
        }
    )


async def engine_metrics(request: web.Request) -> web.Response:
    """Every ready worker's /metrics, each sample labelled with its worker id."""
    node = node_of(request)
    workers = _ready_workers(node)
    timeout = aiohttp.ClientTimeout(total=node.config.health_check_timeout_secs)

    async def fetch(worker: Worker) -> tuple[Worker, str | None]:
        try:
            async with node.session.get(
                worker.base_url + "/metrics", headers=worker.auth_headers, timeout=timeout
            ) as resp:
                text = (await resp.read()).decode(errors="replace")
                return worker, text if resp.status < 300 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log_failure(worker.id, worker.url, "GET /metrics", exc)
            return worker, None

    lines: list[str] = []
    described: set[str] = set()
    for worker, text in await asyncio.gather(*(fetch(w) for w in workers)):
        if text is None:
            lines.append(f"# worker {worker.id} did not answer")
            continue
        lines.extend(label_samples(text, worker.id, described))
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def label_samples(text: str, worker_id: str, described: set[str]) -> list[str]:
    """Add `worker="<id>"` to each sample; keep each HELP/TYPE line once."""
    out = []
    label = f'worker="{worker_id}"'
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            if line not in described:
                described.add(line)
                out.append(line)
            continue
        name, brace, rest = line.partition("{")
        if brace:
            out.append(
                f"{name}{{{label},{rest}" if not rest.startswith("}") else f"{name}{{{label}{rest}"
            )
        else:
            metric, _, value = line.partition(" ")
            out.append(f"{metric}{{{label}}} {value}")
    return out
