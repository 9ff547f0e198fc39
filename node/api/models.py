"""Model deployments and their publication (seed 002): /api/models…, /api/published-models.

A model is a named deployment in a tenant: the workers it maps to (by model id
and/or labels), its routing policy and scaling hints. Publishing it gives it
an external path (`/models/<name>` by default), its own API key (shown in
full once), the tenants allowed to call it and its rate limits; requests on
the external path are served like any inference request, with the
publication's limits and usage.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from node.api.common import json_object, json_response, node_of, reject_unknown
from node.api.manage import (
    NAME,
    guarded,
    iso,
    managed_key,
    narrow_to_parent,
    new_secret,
    parse_limits,
    scope_tenant,
    visible_tenants,
)
from node.app import Node
from node.auth import Principal
from node.errors import ApiError
from node.pipeline.request import InferenceRequest, Target
from node.proxy.facts import parse_body
from node.routing import PolicyError, validate_policy
from node.workers.worker import Worker

MODEL_FIELDS = frozenset(
    {
        "name",
        "namespace",
        "tenantId",
        "modelId",
        "selector",
        "framework",
        "storageUri",
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "policy",
        "policyParams",
        "description",
    }
)
SCALING = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric")
PUBLISH_FIELDS = frozenset(
    {
        "tenantId",
        "modelType",
        "externalPath",
        "publicHostname",
        "rateLimiting",
        "authentication",
        "metadata",
    }
)
# Which worker route a predict body goes to, by the field it carries.
PREDICT_ROUTES = (
    ("messages", "/v1/chat/completions"),
    ("prompt", "/v1/completions"),
    ("input", "/v1/embeddings"),
    ("text", "/generate"),
)


# The routes predict requests are counted under (their `route` metric label).
PREDICT_ROUTE = "/api/models/{name}/predict"
EXTERNAL_ROUTE = "/models/{name}/{tail}"
# Who calls, the deployment they reach, and its publication (None for plain predict).
Deployment = tuple[Principal, dict[str, Any], dict[str, Any] | None]


def install(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/models", guarded(list_models))
    r.add_post("/api/models", guarded(create_model))
    r.add_get("/api/models/{name}", guarded(get_model))
    r.add_put("/api/models/{name}", guarded(update_model))
    r.add_delete("/api/models/{name}", guarded(delete_model))
    r.add_post("/api/models/{name}/predict", guarded(predict))
    r.add_post("/api/models/{name}/publish", guarded(publish))
    r.add_get("/api/models/{name}/publish", guarded(get_publication))
    r.add_put("/api/models/{name}/publish", guarded(update_publication))
    r.add_delete("/api/models/{name}/publish", guarded(unpublish))
    r.add_post("/api/models/{name}/publish/rotate-key", guarded(rotate_publication_key))
    r.add_get("/api/published-models", guarded(list_published))
    r.add_post("/models/{name}/{tail:.*}", external)


# -- deployments ------------------------------------------------------------------------------


def _selector(data: dict[str, Any], name: str) -> dict[str, Any]:
    selector = data.get("selector") or {"model_id": data.get("modelId") or name}
    if not isinstance(selector, dict) or not set(selector) <= {"model_id", "labels"}:
        raise ApiError(400, "selector must be {model_id?, labels?}")
    if "model_id" in selector and not isinstance(selector["model_id"], str):
        raise ApiError(400, "selector.model_id must be a string")
    labels = selector.get("labels")
    if labels is not None and (
        not isinstance(labels, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise ApiError(400, "selector.labels must map strings to strings")
    return selector


def _model_spec(
    data: dict[str, Any], name: str, tenant: str, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    current = current or {}
    scaling = dict(current.get("scaling") or {})
    for field in SCALING:
        if field in data:
            value = data[field]
            if field == "scaleMetric":
                valid, wanted = isinstance(value, str), "a string"
            else:
                valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                wanted = "an integer >= 0"
            if not valid:
                raise ApiError(
                    400, "Invalid request format", extra={"details": f"{field} must be {wanted}"}
                )
            scaling[field] = value
    if scaling.get("minReplicas", 0) > scaling.get("maxReplicas", 1 << 30):
        raise ApiError(400, "minReplicas must not exceed maxReplicas")
    policy = data.get("policy", current.get("policy"))
    params = data.get("policyParams", current.get("policy_params")) or {}
    if policy is not None:
        try:
            params = validate_policy(policy, params)
        except PolicyError as exc:
            raise ApiError(400, str(exc)) from None
    for field in ("framework", "storageUri", "description"):
        if field in data and data[field] is not None and not isinstance(data[field], str):
            raise ApiError(400, f"{field} must be a string")
    selector = (
        _selector(data, name)
        if ("selector" in data or "modelId" in data or not current)
        else current["selector"]
    )
    return {
        "name": name,
        "tenant": tenant,
        "selector": selector,
        "policy": policy,
        "policy_params": params,
        "scaling": scaling,
        "framework": data.get("framework", current.get("framework")),
        "description": data.get("description", current.get("description")),
    }


def _workers_for(node: Node, model: dict[str, Any]) -> tuple[Worker, ...]:
    selector = model["selector"]
    wanted = selector.get("model_id")
    labels = selector.get("labels") or {}
    return tuple(
        w
        for w in node.pool.all()
        if (wanted is None or w.model_id == wanted)
        and all(w.record.get("labels", {}).get(k) == v for k, v in labels.items())
    )


def _model_view(node: Node, model: dict[str, Any], request: web.Request) -> dict[str, Any]:
    workers = _workers_for(node, model)
    ready = [w for w in workers if w.routable]
    scaling = model.get("scaling") or {}
    base = f"{request.scheme}://{request.host}"
    return {
        "name": model["name"],
        "namespace": model["tenant"],
        "status": "Ready" if ready else "NotReady",
        "ready": bool(ready),
        "url": f"{base}/api/models/{model['name']}/predict",
        "predictor": {"framework": model.get("framework"), "selector": model["selector"]},
        "policy": model.get("policy") or node.selector.record_for(None)["policy"],
        "scaling": scaling,
        "description": model.get("description"),
        "createdAt": iso(model.get("created_at")),
        "published": model["ref"] in node.raft.state.published,
        "statusDetails": {
            "ready": bool(ready),
            "phase": "Ready" if ready else "Pending",
            "replicas": {
                "desired": scaling.get("minReplicas", len(workers)),
                "ready": len(ready),
                "total": len(workers),
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": str(bool(ready)),
                    "reason": "WorkersReady" if ready else "NoReadyWorkers",
                    "message": f"{len(ready)} of {len(workers)} worker(s) ready",
                }
            ],
        },
    }


def _find(node: Node, principal: Principal, request: web.Request) -> dict[str, Any]:
    tenant = scope_tenant(node, principal, request.query.get("namespace"))
    model = node.raft.state.models.get(f"{tenant}/{request.match_info['name']}")
    if model is None:
        raise ApiError(404, "Model not found")
    return model


async def list_models(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    tenants = visible_tenants(node, principal, request.query.get("namespace"))
    models = [
        _model_view(node, m, request)
        for m in node.raft.state.models.values()
        if tenants is None or m["tenant"] in tenants
    ]
    return json_response({"models": sorted(models, key=lambda m: (m["namespace"], m["name"]))})


async def create_model(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    data = await json_object(request)
    reject_unknown(data, MODEL_FIELDS)
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiError(
            400,
            "Invalid request format",
            extra={"details": "Field 'name' is required: 1-63 lowercase letters, digits or '-'"},
        )
    tenant = scope_tenant(node, principal, data.get("namespace") or data.get("tenantId"))
    spec = _model_spec(data, name, tenant)
    await node.commit("model.put", {"model": spec, "create": True}, principal)
    return json_response(
        {
            "message": "Model created successfully",
            "name": name,
            "namespace": tenant,
            "config": {**spec["scaling"], "selector": spec["selector"], "policy": spec["policy"]},
        },
        status=201,
    )


async def get_model(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    return json_response(_model_view(node, _find(node, principal, request), request))


def _may_manage_publication(node: Node, principal: Principal, model: dict[str, Any]) -> None:
    """Changing what a published model serves, or its publication, is managing the
    publication's key: admins, a tenant minter's token, or the key that published it
    (and that key's ancestors); never a sibling key of the same tenant."""
    record = node.raft.state.published.get(model["ref"])
    if record is not None:
        _may_publish(principal)
        managed_key(node, principal, record["key_id"])


async def update_model(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    current = _find(node, principal, request)
    _may_manage_publication(node, principal, current)
    data = await json_object(request)
    reject_unknown(data, MODEL_FIELDS - {"name", "namespace", "tenantId"})
    spec = _model_spec(data, current["name"], current["tenant"], current)
    await node.commit("model.put", {"model": spec, "create": False}, principal)
    return json_response(
        {
            "message": "Model updated successfully",
            **_model_view(node, node.raft.state.models[current["ref"]], request),
        }
    )


async def delete_model(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    model = _find(node, principal, request)
    _may_manage_publication(node, principal, model)
    await node.commit("model.delete", {"ref": model["ref"]}, principal)
    return json_response({"message": "Model deleted successfully"})


async def _serve(
    request: web.Request,
    route: str,
    deployment: Callable[[], Awaitable[Deployment]],
) -> web.StreamResponse:
    """Run a predict request through the pipeline, counted under `route`; `deployment`
    authorizes the caller and names the model and publication it reaches."""
    node = node_of(request)
    pipeline = node.pipeline

    async def enter(started: float) -> InferenceRequest:
        principal, model, published = await deployment()
        raw = await request.read()
        data = parse_body(raw)
        if isinstance(data.get("inputData"), dict):
            data = data["inputData"]
            raw = orjson.dumps(data)
        path = next((p for field, p in PREDICT_ROUTES if field in data), None)
        if path is None:
            raise ApiError(
                400,
                "send an OpenAI-style body (messages, prompt or input), "
                "optionally wrapped in inputData",
            )
        target = Target(
            candidates=_workers_for(node, model),
            policy_key=model["ref"],
            deployment=model["name"],
            published=published,
        )
        return pipeline.request(request, principal, path, raw, data, started, target)

    return await pipeline.serve(request, route, enter)


async def predict(request: web.Request, principal: Principal) -> web.StreamResponse:
    async def deployment() -> Deployment:
        return principal, _find(node_of(request), principal, request), None

    return await _serve(request, PREDICT_ROUTE, deployment)


# -- publishing ----------------------------------------------------------------------------------


def _publication(
    node: Node, data: dict[str, Any], model: dict[str, Any], current: dict[str, Any] | None = None
) -> dict[str, Any]:
    config = data.get("config")
    if not isinstance(config, dict):
        raise ApiError(400, "Invalid request format", extra={"details": 'send {"config": {...}}'})
    reject_unknown(config, PUBLISH_FIELDS)
    current = current or {}
    if config.get("tenantId") not in (None, model["tenant"]):
        raise ApiError(400, "tenantId must be the model's tenant")
    path = config.get("externalPath", current.get("externalPath") or f"/models/{model['name']}")
    if (
        not isinstance(path, str)
        or not path.startswith("/models/")
        or path.count("/") != 2
        or not NAME.fullmatch(path.split("/")[2])
    ):
        raise ApiError(400, "externalPath must be /models/<name>")
    for field in ("rateLimiting", "authentication"):
        if config.get(field) is not None and not isinstance(config[field], dict):
            raise ApiError(400, f"{field} must be an object")
    limits = {**(current.get("rateLimiting") or {}), **(config.get("rateLimiting") or {})}
    parse_limits(limits)  # validates
    auth = {
        **(current.get("authentication") or {"requireApiKey": True}),
        **(config.get("authentication") or {}),
    }
    allowed = auth.get("allowedTenants", [model["tenant"]])
    if not isinstance(allowed, list) or not all(isinstance(t, str) for t in allowed):
        raise ApiError(400, "authentication.allowedTenants must be a list of tenant names")
    for field in ("modelType", "publicHostname"):
        if field in config and not isinstance(config[field], str):
            raise ApiError(400, f"{field} must be a string")
    if "metadata" in config and not isinstance(config["metadata"], dict):
        raise ApiError(400, "metadata must be an object")
    return {
        "modelName": model["name"],
        "namespace": model["tenant"],
        "tenantId": model["tenant"],
        "modelType": config.get("modelType", current.get("modelType", "llm")),
        "externalPath": path,
        "publicHostname": config.get("publicHostname", current.get("publicHostname")),
        "rateLimiting": limits,
        "authentication": {"requireApiKey": True, "allowedTenants": allowed},
        "metadata": config.get("metadata", current.get("metadata", {})),
    }


async def _publication_view(
    node: Node, record: dict[str, Any], request: web.Request, key: str | None = None
) -> dict[str, Any]:
    state = node.raft.state
    key_record = state.api_keys.get(record["key_id"], {})
    shown_key = key or f"{key_record.get('prefix', '')}…"
    host = record.get("publicHostname") or request.host
    scheme = "https" if record.get("publicHostname") else request.scheme
    endpoint = f"{scheme}://{host}{record['externalPath']}"
    usage = await node.usage.read(
        f"model:{record['ref']}", state.usage.get(f"model:{record['ref']}", {})
    )
    body = '{"messages": [{"role": "user", "content": "Hello"}]}'
    return {
        **{
            k: record[k]
            for k in (
                "modelName",
                "namespace",
                "tenantId",
                "modelType",
                "publicHostname",
                "rateLimiting",
                "status",
            )
        },
        "externalUrl": endpoint,
        "apiKey": shown_key,
        "keyId": record["key_id"],
        "allowedTenants": record["authentication"]["allowedTenants"],
        "createdAt": iso(record["created_at"]),
        "updatedAt": iso(record["updated_at"]),
        "usage": {
            "totalRequests": usage["total_requests"],
            "requestsToday": usage["requests_today"],
            "tokensUsed": usage["tokens_used"],
            "lastAccessTime": iso(usage["last_access"]),
        },
        "documentation": {
            "endpointUrl": endpoint,
            "authHeaders": {"X-API-Key": shown_key},
            "exampleRequests": [
                {
                    "method": "POST",
                    "url": f"{endpoint}/predict",
                    "headers": {"Content-Type": "application/json", "X-API-Key": shown_key},
                    "body": body,
                    "description": "Make a prediction request",
                }
            ],
            "sdkExamples": {
                "curl": f"curl -X POST {endpoint}/predict -H 'Content-Type: application/json' "
                f"-H 'X-API-Key: {shown_key}' -d '{body}'",
                "python": f"import openai\nclient = openai.OpenAI(base_url='{endpoint}/v1', "
                f"api_key='{shown_key}')",
            },
        },
    }


def _published(node: Node, model: dict[str, Any]) -> dict[str, Any]:
    record = node.raft.state.published.get(model["ref"])
    if record is None:
        raise ApiError(404, "Model is not published")
    return record


def _may_publish(principal: Principal) -> None:
    """A publication has its own key and limits, so publishing is minting (403 otherwise)."""
    if not principal.can_mint:
        raise ApiError(
            403, "publishing needs role admin or minter: a publication carries its own key"
        )


async def publish(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    _may_publish(principal)
    model = _find(node, principal, request)
    publication = _publication(node, await json_object(request), model)
    # Published by a key: the publication's key is minted from it, so it is no wider
    # (models, limits, expiry) and is revoked with it.
    parent = principal.key if principal.key is not None and not principal.is_admin else None
    models, limits, expires_at = (
        narrow_to_parent(parent, None, {}, None) if parent else (None, {}, None)
    )
    wanted = model["selector"].get("model_id")
    if models is not None and wanted is not None and wanted not in models:
        raise ApiError(
            403, f"this key may not publish model {wanted}: it may use only {', '.join(models)}"
        )
    key, prefix, digest = new_secret("pk_live_")
    key_spec = {
        "id": f"pub-{model['tenant']}-{model['name']}-{int(time.time() * 1000)}",
        "name": f"publication {model['ref']}",
        "tenant": model["tenant"],
        "role": "user",
        "prefix": prefix,
        "hash": digest,
        "models": models,
        "limits": limits,
        "expires_at": expires_at,
        "parent": parent["id"] if parent is not None else None,
        "published_model": model["ref"],
    }
    await node.commit(
        "publish.put",
        {"ref": model["ref"], "publication": publication, "key": key_spec, "create": True},
        principal,
        shows_secret=True,
    )
    view = await _publication_view(node, node.raft.state.published[model["ref"]], request, key)
    return json_response(
        {"message": "Model published successfully", "publishedModel": view}, status=201
    )


async def get_publication(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    model = _find(node, principal, request)
    return json_response(await _publication_view(node, _published(node, model), request))


async def update_publication(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    _may_publish(principal)
    model = _find(node, principal, request)
    current = _published(node, model)
    managed_key(node, principal, current["key_id"])
    publication = _publication(node, await json_object(request), model, current)
    await node.commit("publish.put", {"ref": model["ref"], "publication": publication}, principal)
    view = await _publication_view(node, node.raft.state.published[model["ref"]], request)
    return json_response(
        {"message": "Published model updated successfully", "publishedModel": view}
    )


async def unpublish(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    _may_publish(principal)
    model = _find(node, principal, request)
    managed_key(node, principal, _published(node, model)["key_id"])
    await node.commit("publish.delete", {"ref": model["ref"]}, principal)
    return json_response({"message": "Model unpublished successfully"})


async def rotate_publication_key(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    _may_publish(principal)
    record = _published(node, _find(node, principal, request))
    managed_key(node, principal, record["key_id"])
    key, prefix, digest = new_secret("pk_live_")
    await node.commit(
        "key.rotate",
        {"id": record["key_id"], "prefix": prefix, "hash": digest},
        principal,
        shows_secret=True,
    )
    return json_response(
        {"message": "API key rotated successfully", "newApiKey": key, "updatedAt": iso(time.time())}
    )


async def list_published(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    tenants = visible_tenants(node, principal, request.query.get("namespace"))
    views = []
    for record in node.raft.state.published.values():
        if tenants is None or record["tenantId"] in tenants:
            view = await _publication_view(node, record, request)
            view.pop("documentation")
            views.append(view)
    return json_response({"publishedModels": views, "total": len(views)})


# -- the external path of a published model ----------------------------------------------------


async def external(request: web.Request) -> web.StreamResponse:
    """`POST /models/<name>/predict` (or `/v1/...`) with the publication's key."""
    return await _serve(request, EXTERNAL_ROUTE, lambda: _publication_reached(request))


async def _publication_reached(request: web.Request) -> Deployment:
    """The caller, model and publication of an external path (401/403/404 otherwise)."""
    node = node_of(request)
    principal = node.auth.published(request)  # before anything reveals what exists
    path = f"/models/{request.match_info['name']}"
    matches = [p for p in node.raft.state.published.values() if p["externalPath"] == path]
    if len(matches) != 1:  # two would be a bug (paths are unique); serve neither
        raise ApiError(404, f"no published model at {path}")
    record = matches[0]
    allowed = record["authentication"]["allowedTenants"]
    if principal.publication is not None and principal.publication != record["ref"]:
        raise ApiError(403, "this publication key belongs to another published model")
    own_key = principal.publication == record["ref"]
    if not (own_key or principal.is_admin or principal.tenant in allowed):
        raise ApiError(403, f"Insufficient permissions for published model {record['modelName']}")
    model = node.raft.state.models[record["ref"]]
    tail = request.match_info["tail"]
    if tail not in ("predict", "v1/chat/completions", "v1/completions", "v1/embeddings"):
        raise ApiError(404, f"{path}/{tail} is not an endpoint; use {path}/predict")
    return principal, model, record
