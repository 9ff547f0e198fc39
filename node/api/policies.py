"""Routing policies per model (control plane): `/policies` and `/policies/{model_id}`.

A policy write is validated against the policy registry on the proposing node
and then replicated, so every node routes a model the same way. `*` names the
mesh-wide default; without one, each node uses its `--policy`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final

from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from mesh.state import DEFAULT_POLICY_KEY
from node.api.bodies import Body, Schema, read_body
from node.api.common import json_response, node_of
from node.api.table import COMMIT, Audience, Route
from node.auth import Principal
from node.errors import ApiError
from node.routing import POLICY_NAMES, PolicyError, validate_policy
from node.routing.registry import PARAMS

VERSION: Final = {
    "type": ["integer", "null"],
    "minimum": 0,
    "description": "optimistic concurrency: the record's current version (0: must not exist)",
}


def _param_schema(kind: str, low: float | None, high: float | None) -> Schema:
    if kind == "seed":
        return {"type": ["integer", "null"]}
    schema: Schema = {"type": "integer" if kind == "int" else "number"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def _variant(name: str) -> Schema:
    """One policy's body: its name and exactly its parameters (from the registry)."""
    params = {
        key: {**_param_schema(spec.kind, spec.low, spec.high), "default": spec.default}
        for key, spec in PARAMS[name].items()
    }
    return {
        "type": "object",
        "title": name,
        "properties": {
            "policy": {"const": name},
            "params": {
                "type": ["object", "null"],
                "properties": params,
                "additionalProperties": False,
            },
            "expected_version": VERSION,
        },
        "required": ["policy"],
        "additionalProperties": False,
    }


class PolicySet(Body):
    """The body of PUT /policies/{model_id}. The policy registry checks the name and the
    parameters (the same check models' policies get), so the document shows the
    registry's own shape: one variant per policy, with exactly its parameters."""

    policy: Annotated[str, Meta(description=f"one of {', '.join(POLICY_NAMES)}")]
    params: dict[str, Any] | None = None
    expected_version: Annotated[int, Meta(ge=0)] | UnsetType | None = UNSET
    json_schema: ClassVar[Schema] = {
        "oneOf": [_variant(name) for name in POLICY_NAMES],
        "description": "a routing policy and its params",
    }


FIELDS = frozenset(PolicySet.__struct_fields__)


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
    body = await read_body(request, PolicySet)
    try:
        normalised = validate_policy(body.policy, body.params or {})
    except PolicyError as exc:
        raise ApiError(400, str(exc), param="policy") from None
    args: dict[str, Any] = {"model": model, "policy": body.policy, "params": normalised}
    if body.expected_version is not UNSET:
        args["expected_version"] = body.expected_version
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
        body=PolicySet,
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
