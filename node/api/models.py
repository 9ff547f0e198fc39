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
from typing import Annotated, Any, Literal

import msgspec
import orjson
from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from node.api.bodies import ApiBody, Body, read_body, whole
from node.api.common import client_address, json_response, node_of
from node.api.manage import (
    LIMITS_SCHEMA,
    NAME,
    NAMESPACE,
    Name,
    iso,
    managed_key,
    narrow_to_parent,
    new_secret,
    parse_limits,
    scope_tenant,
    visible_tenants,
)
from node.api.table import COMMIT, Audience, Route
from node.app import Node
from node.auth import OPEN_CALLER, Principal, open_publication_caller, presented_token
from node.errors import ApiError
from node.pipeline.request import InferenceRequest, Target
from node.proxy.facts import parse_body
from node.routing import POLICY_NAMES, PolicyError, validate_policy
from node.workers.worker import Worker

Count = Annotated[int, Meta(ge=0, description="an integer >= 0")]
PolicyName = Annotated[
    Literal[POLICY_NAMES],  # type: ignore[valid-type]
    Meta(description=f"one of {', '.join(POLICY_NAMES)}"),
]
PolicyParams = Annotated[dict[str, Any], Meta(description="the parameters (see PolicySet)")]


class Selector(Body):
    """Which workers a deployment maps to (snake_case, as worker records have it)."""

    model_id: str | UnsetType = UNSET
    labels: Annotated[dict[str, str], Meta(description="string values")] | UnsetType | None = UNSET


class ModelFields(ApiBody):
    """What a deployment write may set (absent: unchanged, or the default on create)."""

    model_id: Annotated[str | None, Meta(description="selects workers by model id")] | UnsetType = (
        UNSET
    )
    selector: Selector | UnsetType | None = UNSET
    framework: str | UnsetType | None = UNSET
    storage_uri: str | UnsetType | None = UNSET
    min_replicas: Count | UnsetType = UNSET
    max_replicas: Count | UnsetType = UNSET
    scale_target: Count | UnsetType = UNSET
    scale_metric: str | UnsetType = UNSET
    policy: PolicyName | UnsetType | None = UNSET
    policy_params: PolicyParams | UnsetType | None = UNSET
    description: str | UnsetType | None = UNSET


class ModelCreate(ModelFields, kw_only=True):
    name: Name
    namespace: Annotated[str | None, Meta(description="the tenant (admins must name it)")] = None
    tenant_id: Annotated[str | None, Meta(description="same as namespace")] = None


class ModelUpdate(ModelFields, kw_only=True):
    """A deployment's changes (its name is in the path; admins may name its tenant in the
    query or here)."""

    namespace: Annotated[str | None, Meta(description="the tenant (admins)")] = None
    tenant_id: Annotated[str | None, Meta(description="same as namespace")] = None


MODEL_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(ModelCreate))
SCALING = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric")


class PublicationAuth(msgspec.Struct, rename="camel"):  # open, as seed 002 has it
    require_api_key: bool | UnsetType = UNSET
    allowed_tenants: (
        Annotated[list[str], Meta(description="the tenants whose users may call it")] | UnsetType
    ) = UNSET


class PublishConfig(ApiBody):
    tenant_id: Annotated[str | None, Meta(description="must be the model's tenant")] = None
    model_type: str | UnsetType = UNSET
    external_path: (
        Annotated[str, Meta(pattern=whole("/models/" + NAME.pattern), description="/models/<name>")]
        | UnsetType
    ) = UNSET
    public_hostname: str | UnsetType = UNSET
    rate_limiting: Annotated[dict[str, Any], LIMITS_SCHEMA] | UnsetType | None = UNSET
    authentication: PublicationAuth | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class Publish(msgspec.Struct):  # open, as seed 002 has it
    config: PublishConfig


PUBLISH_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(PublishConfig))
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


# -- deployments ------------------------------------------------------------------------------


def _selector(body: ModelFields, name: str) -> dict[str, Any]:
    sent = _sent(body.selector) if isinstance(body.selector, Selector) else {}
    return sent or {"model_id": body.model_id or name}


def _sent(body: msgspec.Struct) -> dict[str, Any]:
    """The fields a body sets, by their names on the wire."""
    return {
        field.encode_name: value
        for field in msgspec.structs.fields(body)
        if (value := getattr(body, field.name)) is not UNSET
    }


def _or(value: Any, current: Any) -> Any:
    return current if value is UNSET else value


def _model_spec(
    body: ModelFields, name: str, tenant: str, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    current = current or {}
    scaling = dict(current.get("scaling") or {})
    scaling.update((k, v) for k, v in _sent(body).items() if k in SCALING)
    if scaling.get("minReplicas", 0) > scaling.get("maxReplicas", 1 << 30):
        raise ApiError(400, "minReplicas must not exceed maxReplicas")
    policy = _or(body.policy, current.get("policy"))
    params = _or(body.policy_params, current.get("policy_params")) or {}
    if policy is not None:
        try:
            params = validate_policy(policy, params)
        except PolicyError as exc:
            raise ApiError(400, str(exc), param="policyParams") from None
    selector = (
        _selector(body, name)
        if (body.selector is not UNSET or body.model_id is not UNSET or not current)
        else current["selector"]
    )
    return {
        "name": name,
        "tenant": tenant,
        "selector": selector,
        "policy": policy,
        "policy_params": params,
        "scaling": scaling,
        "framework": _or(body.framework, current.get("framework")),
        "storage_uri": _or(body.storage_uri, current.get("storage_uri")),
        "description": _or(body.description, current.get("description")),
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
        "predictor": {
            "framework": model.get("framework"),
            "storageUri": model.get("storage_uri"),
            "selector": model["selector"],
        },
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


def _named(request: web.Request, named: str | None) -> str | None:
    """The tenant a request names: `?namespace=`, or the body's `namespace`/`tenantId`
    (`named`); both may be given if they agree."""
    query = request.query.get("namespace")
    if query and named and query != named:
        raise ApiError(400, f"?namespace={query} and the body's tenant {named} differ")
    return query or named


def _find(
    node: Node, principal: Principal, request: web.Request, named: str | None = None
) -> dict[str, Any]:
    """The deployment the path names, in the tenant the request names (see `_named`)."""
    tenant = scope_tenant(node, principal, _named(request, named))
    model = node.raft.state.models.get(f"{tenant}/{request.match_info['name']}")
    if model is None:
        raise ApiError(404, "Model not found")
    return model


def _query_tenant_first(node: Node, principal: Principal, request: web.Request) -> None:
    """Before a by-name route reads its body (which may name the tenant too): a
    `?namespace=` the caller may not act on is a 403 whatever the body holds."""
    query = request.query.get("namespace")
    if query or not principal.is_admin:
        scope_tenant(node, principal, query)


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
    body = await read_body(request, ModelCreate)
    name = body.name
    tenant = scope_tenant(node, principal, _named(request, body.namespace or body.tenant_id))
    spec = _model_spec(body, name, tenant)
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
    _query_tenant_first(node, principal, request)
    body = await read_body(request, ModelUpdate)
    current = _find(node, principal, request, body.namespace or body.tenant_id)
    _may_manage_publication(node, principal, current)
    spec = _model_spec(body, current["name"], current["tenant"], current)
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
    body: Publish,
    model: dict[str, Any],
    principal: Principal,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The publication record a publish or an update asks for (what it leaves out stays)."""
    config, tenant = body.config, model["tenant"]
    current = current or {}
    if config.tenant_id not in (None, tenant):
        raise ApiError(400, "tenantId must be the model's tenant", param="tenantId")
    limits = {**(current.get("rateLimiting") or {}), **(config.rate_limiting or {})}
    parse_limits(limits)  # validates
    auth = config.authentication
    allowed = (
        auth.allowed_tenants
        if isinstance(auth, PublicationAuth) and auth.allowed_tenants is not UNSET
        else (current.get("authentication") or {}).get("allowedTenants", [tenant])
    )
    return {
        "modelName": model["name"],
        "namespace": tenant,
        "tenantId": tenant,
        "modelType": _or(config.model_type, current.get("modelType", "llm")),
        "externalPath": _or(
            config.external_path, current.get("externalPath") or f"/models/{model['name']}"
        ),
        "publicHostname": _or(config.public_hostname, current.get("publicHostname")),
        "rateLimiting": limits,
        "authentication": {
            "requireApiKey": _require_api_key(auth, current, principal),
            "allowedTenants": allowed,
        },
        "metadata": _or(config.metadata, current.get("metadata", {})),
    }


def _require_api_key(
    auth: PublicationAuth | UnsetType | None, current: dict[str, Any], principal: Principal
) -> bool:
    """Whether callers need a key (the default); only an admin may open a publication."""
    sent = auth.require_api_key if isinstance(auth, PublicationAuth) else UNSET
    if sent is False and not principal.is_admin:
        raise ApiError(
            403,
            "only an admin may open a publication (requireApiKey: false)",
            param="requireApiKey",
        )
    if sent is UNSET:
        return bool((current.get("authentication") or {}).get("requireApiKey", True))
    return bool(sent)


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
        "requireApiKey": record["authentication"].get("requireApiKey", True),
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
    _query_tenant_first(node, principal, request)
    body = await read_body(request, Publish)
    model = _find(node, principal, request, body.config.tenant_id)
    publication = _publication(body, model, principal)
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
    _query_tenant_first(node, principal, request)
    body = await read_body(request, Publish)
    model = _find(node, principal, request, body.config.tenant_id)
    current = _published(node, model)
    managed_key(node, principal, current["key_id"])
    publication = _publication(body, model, principal, current)
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
    path = f"/models/{request.match_info['name']}"
    matches = [p for p in node.raft.state.published.values() if p["externalPath"] == path]
    opened = len(matches) == 1 and matches[0]["authentication"].get("requireApiKey") is False
    if opened and node.auth.configured and not presented_token(request):
        # Open by an admin's choice: a caller without credential is known by its address.
        address = client_address(request, node.config.forwarded_allow_ips)
        principal = open_publication_caller(address)
    else:
        principal = node.auth.published(request)  # before anything reveals what exists
    if len(matches) != 1:  # two would be a bug (paths are unique); serve neither
        raise ApiError(404, f"no published model at {path}")
    record = matches[0]
    allowed = record["authentication"]["allowedTenants"]
    if principal.publication is not None and principal.publication != record["ref"]:
        raise ApiError(403, "this publication key belongs to another published model")
    own_key = principal.publication == record["ref"]
    anyone = principal.kind == OPEN_CALLER
    if not (anyone or own_key or principal.is_admin or principal.tenant in allowed):
        raise ApiError(403, f"Insufficient permissions for published model {record['modelName']}")
    model = node.raft.state.models[record["ref"]]
    tail = request.match_info["tail"]
    if tail not in ("predict", "v1/chat/completions", "v1/completions", "v1/embeddings"):
        raise ApiError(404, f"{path}/{tail} is not an endpoint; use {path}/predict")
    return principal, model, record


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "POST",
        "/models/{name}/{tail:.*}",
        external,
        Audience.PUBLISHED,
        "publishedPredict",
        "inference",
        "Call a published model on its external path",
        answers={200: "the worker's answer"},
        errors=(403, 404, 429, 502, 503, 504),
        body="Predict",
        description=(
            "Also served under /models/{name}/v1/chat/completions, "
            "/v1/completions and /v1/embeddings. 404 (no published model at the "
            "path) is answered before credentials are checked."
        ),
        relayed=True,
        checks_credentials=True,
        documented_as="/models/{name}/predict",
    ),
    Route(
        "GET",
        "/api/models",
        list_models,
        Audience.MANAGEMENT,
        "listDeployments",
        "management",
        "Model deployments",
        answers={200: "models"},
        errors=(400, 403, 404),
        query=(NAMESPACE,),
    ),
    Route(
        "POST",
        "/api/models",
        create_model,
        Audience.MANAGEMENT,
        "createDeployment",
        "management",
        "Create a model deployment",
        answers={201: "created"},
        errors=(403, 404, 409, 422, *COMMIT),
        body=ModelCreate,
    ),
    Route(
        "GET",
        "/api/models/{name}",
        get_model,
        Audience.MANAGEMENT,
        "getDeployment",
        "management",
        "One model deployment",
        answers={200: "the model"},
        errors=(400, 403, 404),
        query=(NAMESPACE,),
    ),
    Route(
        "PUT",
        "/api/models/{name}",
        update_model,
        Audience.MANAGEMENT,
        "updateDeployment",
        "management",
        "Change a model deployment",
        answers={200: "updated"},
        errors=(400, 403, 404, 409, *COMMIT),
        body=ModelUpdate,
        query=(NAMESPACE,),
    ),
    Route(
        "DELETE",
        "/api/models/{name}",
        delete_model,
        Audience.MANAGEMENT,
        "deleteDeployment",
        "management",
        "Delete an unpublished model deployment",
        answers={200: "deleted"},
        errors=(400, 403, 404, 409, *COMMIT),
        query=(NAMESPACE,),
    ),
    Route(
        "POST",
        "/api/models/{name}/predict",
        predict,
        Audience.MANAGEMENT,
        "predict",
        "management",
        "Send an inference request to a deployment's workers",
        answers={200: "the worker's answer"},
        errors=(403, 404, 429, 502, 503, 504),
        body="Predict",
        query=(NAMESPACE,),
        description="A worker's own error is relayed unchanged, in its own (OpenAI) shape.",
        relayed=True,
    ),
    Route(
        "POST",
        "/api/models/{name}/publish",
        publish,
        Audience.MANAGEMENT_MINTER,
        "publish",
        "management",
        "Publish a deployment on an external path, with its own key",
        answers={201: "published"},
        errors=(400, 403, 404, 409, 422, *COMMIT),
        body=Publish,
        query=(NAMESPACE,),
    ),
    Route(
        "GET",
        "/api/models/{name}/publish",
        get_publication,
        Audience.MANAGEMENT,
        "getPublication",
        "management",
        "A deployment's publication",
        answers={200: "it"},
        errors=(400, 403, 404),
        query=(NAMESPACE,),
    ),
    Route(
        "PUT",
        "/api/models/{name}/publish",
        update_publication,
        Audience.MANAGEMENT_MINTER,
        "updatePublication",
        "management",
        "Change a publication",
        answers={200: "updated"},
        errors=(400, 403, 404, 409, *COMMIT),
        body=Publish,
        query=(NAMESPACE,),
    ),
    Route(
        "DELETE",
        "/api/models/{name}/publish",
        unpublish,
        Audience.MANAGEMENT_MINTER,
        "unpublish",
        "management",
        "Unpublish a deployment",
        answers={200: "unpublished"},
        errors=(400, 403, 404, *COMMIT),
        query=(NAMESPACE,),
    ),
    Route(
        "POST",
        "/api/models/{name}/publish/rotate-key",
        rotate_publication_key,
        Audience.MANAGEMENT_MINTER,
        "rotatePublicationKey",
        "management",
        "Replace a publication's key",
        answers={200: "the new key"},
        errors=(400, 403, 404, 409, *COMMIT),
        query=(NAMESPACE,),
    ),
    Route(
        "GET",
        "/api/published-models",
        list_published,
        Audience.MANAGEMENT,
        "listPublished",
        "management",
        "Published models",
        answers={200: "publishedModels, total"},
        errors=(400, 403, 404),
        query=(NAMESPACE,),
    ),
)
