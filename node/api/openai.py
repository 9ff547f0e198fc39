"""The inference API: OpenAI-compatible and SGLang-native routes, proxied to workers.

Protected routes pass auth, then the inference pipeline (`node.pipeline`).
Public model routes (`/v1/models`, `/v1/models/{id}`, `/get_model_info`, `/get_server_info`,
`/engine_metrics`) are answered from the pool or by asking workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.api.common import Handler, json_response, node_of
from node.api.table import Audience, Query, Route, plain_text
from node.app import Node
from node.errors import ApiError
from node.live.visibility import redact
from node.pipeline.authorize import key_models
from node.pipeline.request import InferenceRequest
from node.proxy.facts import parse_body
from node.proxy.failures import REDIRECTED, log_failure
from node.proxy.upstream import is_redirect
from node.workers.client import WorkerCallFailed
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


def _served_models(node: Node) -> dict[str, dict[str, Any]]:
    """The OpenAI model object of every model a ready worker serves, by id."""
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
    return models


def visible_models(request: web.Request) -> dict[str, dict[str, Any]]:
    """The served models the caller may see: a key restricted to some models sees only
    those (the list and a single model answer alike, so neither tells more)."""
    node = node_of(request)
    models = _served_models(node)
    allowed = key_models(node.auth.caller(request))
    if allowed is None:
        return models
    return {name: model for name, model in models.items() if name in allowed}


async def list_models(request: web.Request) -> web.Response:
    models = visible_models(request)
    return json_response({"object": "list", "data": [models[name] for name in sorted(models)]})


async def retrieve_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    model = visible_models(request).get(name)
    if model is None:
        # The same answer for a model nobody serves and one the key may not use.
        raise ApiError(
            404, f"the model {name!r} does not exist", code="model_not_found", param="model"
        )
    return json_response(model)


async def _get_json(node: Node, worker: Worker, path: str) -> tuple[int, Any]:
    """The worker's status and its answer as JSON (or as text, when it is not JSON)."""
    timeout = node.config.health_check_timeout_secs
    answer = await node.worker_client.get(worker.target, path, timeout=timeout)
    body = answer.json()
    return answer.status, body if body is not None or not answer.body else answer.text()


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
    except WorkerCallFailed as exc:
        log_failure(worker.id, worker.url, "GET /get_model_info", exc.detail)
        raise ApiError(502, f"worker {worker.id} {exc}") from None
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
        except WorkerCallFailed as exc:
            log_failure(worker.id, worker.url, "GET /get_server_info", exc.detail)
            return {**shown, "error": str(exc)}
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
    timeout = node.config.health_check_timeout_secs

    async def fetch(worker: Worker) -> tuple[Worker, str | None]:
        try:
            answer = await node.worker_client.get(worker.target, "/metrics", timeout=timeout)
        except WorkerCallFailed as exc:
            log_failure(worker.id, worker.url, "GET /metrics", exc.detail)
            return worker, None
        return worker, answer.text() if answer.ok else None

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


# -- the routes ------------------------------------------------------------------------------


def _inference_route(path: str) -> Route:
    return Route(
        "POST",
        path,
        inference_handler(path),
        Audience.PROTECTED,
        "inference_" + path.strip("/").replace("/", "_"),
        "inference",
        f"Proxy {path} to a worker serving the model",
        answers={
            200: {
                "description": "the worker's answer (text/event-stream when stream is true)",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            }
        },
        errors=(403, 404, 429, 502, 503, 504),
        body="Inference",
        description="404: no worker serves the model; 403: the key may not use the model.",
        relayed=True,
        checks_credentials=True,  # the handler counts refused requests in its metrics
    )


ROUTES = (
    *(_inference_route(path) for path in INFERENCE_ROUTES),
    Route(
        "GET",
        "/v1/models",
        list_models,
        Audience.PUBLIC,
        "listModels",
        "inference",
        "The models ready workers serve (OpenAI list)",
        answers={200: "an OpenAI model list"},
        description="A caller whose key may use only some models sees only those.",
    ),
    Route(
        "GET",
        "/v1/models/{model:.+}",
        retrieve_model,
        Audience.PUBLIC,
        "retrieveModel",
        "inference",
        "One model a ready worker serves (OpenAI model object)",
        answers={200: "an OpenAI model object"},
        errors=(404,),
        description="404 for a model no ready worker serves, and for one the caller's key "
        "may not use.",
    ),
    Route(
        "GET",
        "/get_model_info",
        get_model_info,
        Audience.PUBLIC,
        "getModelInfo",
        "inference",
        "A worker's /get_model_info for a model",
        answers={200: "the worker's answer"},
        errors=(404, 502, 503),
        query=(Query("model", "the model id"),),
        relayed=True,
    ),
    Route(
        "GET",
        "/get_server_info",
        get_server_info,
        Audience.PUBLIC,
        "getServerInfo",
        "inference",
        "The gateway's and every ready worker's server info",
        answers={200: "gateway and workers"},
    ),
    Route(
        "GET",
        "/engine_metrics",
        engine_metrics,
        Audience.PUBLIC,
        "engineMetrics",
        "inference",
        "Every ready worker's /metrics, labelled with its worker id",
        answers={200: plain_text("Prometheus text format")},
    ),
)
