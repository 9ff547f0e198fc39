"""Routing policies per model (control plane): `/policies` and `/policies/{model_id}`.

A policy write is validated against the policy registry on the proposing node
and then replicated, so every node routes a model the same way. `*` names the
mesh-wide default; without one, each node uses its `--policy`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mesh.state import DEFAULT_POLICY_KEY
from node.api.common import json_object, json_response, node_of, reject_unknown
from node.api.table import COMMIT, Audience, Route
from node.auth import Principal
from node.errors import ApiError
from node.routing import PolicyError, validate_policy

FIELDS = frozenset({"policy", "params", "expected_version"})


async def list_policies(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    policies = node.raft.state.policies
    return json_response(
        {
            "policies": [policies[k] for k in sorted(policies)],
            "default": node.selector.record_for(None),
            "node_fallback": node.config.policy,
            "applied_index": node.raft.state.applied_index,
        }
    )


async def get_policy(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    model = request.match_info["model_id"]
    record = node.raft.state.policies.get(model)
    if record is None:
        effective = node.selector.record_for(None if model == DEFAULT_POLICY_KEY else model)
        raise ApiError(
            404,
            f"no policy is set for model {model!r}; it uses {effective['policy']!r}",
            code="POLICY_NOT_FOUND",
            extra={"effective": effective},
        )
    return json_response(record)


async def set_policy(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    model = request.match_info["model_id"]
    data = await json_object(request)
    reject_unknown(data, FIELDS)
    params = data.get("params", {})
    params = {} if params is None else params
    if not isinstance(data.get("policy"), str):
        raise ApiError(400, "policy is required (a policy name)", param="policy")
    if not isinstance(params, dict):
        raise ApiError(400, "params must be an object", param="params")
    try:
        normalised = validate_policy(data["policy"], params)
    except PolicyError as exc:
        raise ApiError(400, str(exc), param="policy") from None
    args: dict[str, Any] = {"model": model, "policy": data["policy"], "params": normalised}
    if "expected_version" in data:
        args["expected_version"] = data["expected_version"]
    await node.commit("policy.set", args, principal)
    return json_response(node.raft.state.policies[model])


async def delete_policy(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    model = request.match_info["model_id"]
    value = await node.commit("policy.delete", {"model": model}, principal)
    return json_response({"status": "deleted", **value})


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/policies",
        list_policies,
        Audience.CONTROL_PLANE,
        "listPolicies",
        "policies",
        "Every model's routing policy and the default",
        answers={200: "policies, default, node_fallback"},
    ),
    Route(
        "GET",
        "/policies/{model_id}",
        get_policy,
        Audience.CONTROL_PLANE,
        "getPolicy",
        "policies",
        "One model's policy",
        answers={200: "the policy record"},
        errors=(404,),
    ),
    Route(
        "PUT",
        "/policies/{model_id}",
        set_policy,
        Audience.CONTROL_PLANE,
        "setPolicy",
        "policies",
        "Set a model's routing policy (mesh-wide)",
        answers={200: "the policy record"},
        errors=(409, *COMMIT),
        body="PolicySet",
    ),
    Route(
        "DELETE",
        "/policies/{model_id}",
        delete_policy,
        Audience.CONTROL_PLANE,
        "deletePolicy",
        "policies",
        "Remove a model's policy (it falls back to the default)",
        answers={200: "deleted"},
        errors=(404, *COMMIT),
    ),
)
