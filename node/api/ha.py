"""The `/ha/*` routes (control plane): the mesh as it really is, and the operator's levers.

Reads come from this node's replica and its live view of its peers; writes
(config keys, rate limits, drain, shutdown plans, membership) are Raft
commands, acknowledged only once committed.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Annotated, Any

import orjson
from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from mesh.commands import LONGEST_WAIT
from mesh.raft import CommitError
from mesh.state import GLOBAL_SCOPE
from node.api import policies
from node.api.bodies import Body, read_body, whole
from node.api.common import json_response, node_of, query_flag
from node.api.table import COMMIT, Audience, Query, Route
from node.api.workers import resolve_worker
from node.app import Node, commit_failure
from node.auth import Principal
from node.digits import ascii_decimal
from node.errors import ApiError
from node.ha.report import health_problems, local_report, mesh_status, rate_limit_counts
from node.runtime import RUNTIME_KEY
from node.tcp_probe import tcp_connects
from node.workers.pairs import pair_health
from node.workers.worker import shown_record

CONFIG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,255}")
CONFIG_VALUE_LIMIT = 64 * 1024  # control state must stay small (RAFT.md)


# -- status ------------------------------------------------------------------------------


async def local(request: web.Request, _: Principal | None) -> web.Response:
    """This node's own report, for its peers (mesh token) and operators (control plane)."""
    return json_response(local_report(node_of(request)))


async def status(request: web.Request, _: Principal) -> web.Response:
    return json_response(mesh_status(node_of(request)))


async def health(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    problems = health_problems(node.raft)
    raft = node.raft.status()
    commit_index, applied_index = node.raft.indexes()
    body = {
        "healthy": not problems,
        "node_name": node.name,
        "leader": node.leader_name(),
        "term": raft.term,
        "commit_index": commit_index,
        "applied_index": applied_index,
        "reasons": problems,
    }
    return json_response(body, 503 if problems else 200)


# -- replicated collections ------------------------------------------------------------------


def _health_views(node: Node, worker_id: str) -> dict[str, Any]:
    """Each node's view of one worker: this node's live one, peers' from their last report."""
    views: dict[str, Any] = {}
    worker = node.pool.get(worker_id)
    if worker is not None:
        views[node.name] = {
            "healthy": worker.healthy,
            "status": worker.status,
            "load": worker.load,
            "circuit_breaker": worker.breaker.state,
            "last_error": worker.last_error,
        }
    for name, view in node.peers.views.items():
        seen = view.report.get("workers", {}).get(worker_id) if view.reachable else None
        views[name] = seen if seen is not None else {"unknown": view.error or "no report"}
    return views


def _worker_record(node: Node, record: dict[str, Any]) -> dict[str, Any]:
    shown = shown_record(record)
    shown["health_by_node"] = _health_views(node, record["id"])
    return shown


async def list_workers(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    workers = sorted(node.raft.state.workers.values(), key=lambda r: r["created_at"])
    return json_response(
        {
            "workers": [_worker_record(node, r) for r in workers],
            "total": len(workers),
            "pd_pairs": pair_health(node.pool.all()),
            "applied_index": node.raft.state.applied_index,
        }
    )


async def get_worker(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    return json_response(_worker_record(node, resolve_worker(node, request)))


# -- config keys ---------------------------------------------------------------------------


def _config_view(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("key", "value", "version", "updated_at", "updated_by")}


async def list_config(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    config = node.raft.state.config
    return json_response(
        {
            "config": [_config_view(config[k]) for k in sorted(config)],
            "applied_index": node.raft.state.applied_index,
        }
    )


async def get_config(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    key = request.match_info["key"]
    record = node.raft.state.config.get(key)
    if record is None:
        raise ApiError(404, f"config key {key!r} not found", code="CONFIG_NOT_FOUND")
    return json_response(_config_view(record))


# -- bodies --------------------------------------------------------------------------------

ExpectedVersion = Annotated[
    Annotated[int, Meta(ge=0)] | Annotated[str, Meta(pattern="^[0-9]{1,18}$")] | None,
    Meta(
        description="optimistic concurrency: the record's current version (0: must not "
        "exist); a string of digits is accepted too"
    ),
]
Target = Annotated[str | None, Meta(description="'self' (default), 'cluster' or a member name")]
Seconds = Annotated[float, Meta(ge=0, le=86400, description="seconds, from 0 to 86400")]


class ConfigSet(Body):
    key: Annotated[
        str,
        Meta(
            pattern=whole(CONFIG_KEY.pattern),
            description="1-256 letters, digits and . _ : / - (starting with a letter or digit)",
        ),
    ]
    value: Annotated[Any, Meta(description=f"any JSON value, at most {CONFIG_VALUE_LIMIT} bytes")]
    expected_version: ExpectedVersion = None


class RateLimitSet(Body):
    requests_per_second: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(description="mesh-wide rate, above 0; null removes the rule"),
    ]
    model: Annotated[str | None, Meta(description="a model id; null or '*': all")] = None
    scope: Annotated[str | UnsetType | None, Meta(description="same as model")] = UNSET
    burst: Annotated[float, Meta(ge=1, description="at least 1")] | UnsetType = UNSET
    expected_version: ExpectedVersion = None


class Shutdown(Body):
    target: Target = "self"
    grace_period_secs: Seconds | UnsetType = UNSET
    drain_delay_secs: Seconds | UnsetType = UNSET


class Drain(Body):
    target: Target = "self"
    draining: Annotated[bool, Meta(description="true: drain; false: serve again")] = True


class MemberAdd(Body):
    raft_address: Annotated[
        str, Meta(pattern="^.+:[0-9]+$", description="HOST:PORT of a running node")
    ]


def _expected_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(
            400,
            "expected_version must be a non-negative integer (0: must not exist)",
            param="expected_version",
        )
    return value


async def set_config(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    body = await read_body(request, ConfigSet)
    key = body.key
    if key == RUNTIME_KEY:
        raise ApiError(
            400,
            f"{RUNTIME_KEY} holds the runtime settings; change it with "
            "PUT /admin/config, which validates them",
            param="key",
        )
    if len(orjson.dumps(body.value)) > CONFIG_VALUE_LIMIT:
        raise ApiError(
            413,
            f"value is larger than {CONFIG_VALUE_LIMIT} bytes of JSON; keep control state small",
            param="value",
            extra={"limit": CONFIG_VALUE_LIMIT},
        )
    args = {
        "key": key,
        "value": body.value,
        "expected_version": _expected_version(body.expected_version),
    }
    value = await node.commit("config.set", args, principal)
    return json_response({"key": key, "version": value["version"], "status": "committed"})


async def delete_config(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    args = {
        "key": request.match_info["key"],
        "expected_version": _expected_version(request.query.get("expected_version")),
    }
    value = await node.commit("config.delete", args, principal)
    return json_response({"key": value["key"], "version": value["version"], "status": "deleted"})


# -- rate limits ---------------------------------------------------------------------------


async def get_rate_limits(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    rules = node.raft.state.rate_limits
    return json_response(
        {
            "rules": [rules[k] for k in sorted(rules)],
            "backend": node.ratelimiter.backend,
            "serving_nodes": node.serving_nodes(),
            "applied_index": node.raft.state.applied_index,
        }
    )


async def set_rate_limit(request: web.Request, principal: Principal) -> web.Response:
    """{"model": null | "*" | model id, "requests_per_second": n | null, "burst"?: n}."""
    node = node_of(request)
    body = await read_body(request, RateLimitSet)
    scope = (body.model if body.scope is UNSET else body.scope) or GLOBAL_SCOPE
    rate = body.requests_per_second
    if rate is None:
        value = await node.commit("ratelimit.delete", {"scope": scope}, principal)
        return json_response({"scope": scope, "version": value["version"], "status": "deleted"})
    args = {
        "scope": scope,
        "requests_per_second": rate,
        "burst": max(1.0, rate) if body.burst is UNSET else body.burst,
        "expected_version": _expected_version(body.expected_version),
    }
    value = await node.commit("ratelimit.set", args, principal)
    return json_response({**node.raft.state.rate_limits[scope], "version": value["version"]})


async def delete_rate_limit(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    scope = request.match_info["scope"]
    value = await node.commit("ratelimit.delete", {"scope": scope}, principal)
    return json_response({"scope": scope, "version": value["version"], "status": "deleted"})


BY_PROCESS = "process"  # ?by=process: each data-plane process's counts too


async def rate_limit_stats(request: web.Request, _: Principal) -> web.Response:
    """Every node's counters, added up per scope, with each node's share (and, with
    ?by=process, each data-plane process's of a node that runs several)."""
    node = node_of(request)
    by = request.query.get("by")
    if by not in (None, BY_PROCESS):
        raise ApiError(400, "by takes 'process' (or leave it out for each node's)", param="by")
    if node.process_limits is not None:
        await node.process_limits.gather()  # afresh: an operator asks for now
    per_node = {node.name: rate_limit_counts(node)}
    unreachable = []
    for name, view in node.peers.views.items():
        if view.reachable and "rate_limits" in view.report:
            per_node[name] = view.report["rate_limits"]
        else:
            unreachable.append(name)
    scopes: dict[str, dict[str, Any]] = {}
    for name, stats in per_node.items():
        for scope, counts in stats.get("scopes", {}).items():
            total = scopes.setdefault(scope, {"admitted": 0, "rejected": 0, "by_node": {}})
            total["admitted"] += counts["admitted"]
            total["rejected"] += counts["rejected"]
            shown = total["by_node"][name] = dict(counts)
            if by != BY_PROCESS:
                shown.pop("by_process", None)
    for total in scopes.values():
        admitted = total["admitted"] or 1
        for counts in total["by_node"].values():
            counts["share_of_admitted"] = round(counts["admitted"] / admitted, 4)
    answer: dict[str, Any] = {
        "scopes": scopes,
        "nodes": sorted(per_node),
        "unreachable_nodes": unreachable,
        "backends": {n: s.get("backend") for n, s in per_node.items()},
    }
    # A node of several processes adds up its data-plane processes' counts: those that
    # did not answer in time are left out of its figures, and named.
    missing = {n: s["missing_processes"] for n, s in per_node.items() if s.get("missing_processes")}
    if missing:
        answer["missing_processes"] = missing
    return json_response(answer)


# -- drain, shutdown, membership --------------------------------------------------------------


def _target_names(node: Node, target: str | None) -> list[str]:
    members = node.raft.state.members
    if target in (None, "self"):
        return [node.name]
    if target == "cluster":
        return sorted(members)
    if target not in members:
        known = ", ".join(sorted(members)) or "none"
        raise ApiError(
            404, f"target must be 'self', 'cluster' or a member name ({known})", param="target"
        )
    return [target]


async def shutdown(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    body = await read_body(request, Shutdown, optional=True)
    grace = body.grace_period_secs
    drain_delay = body.drain_delay_secs
    names = _target_names(node, body.target)
    members = node.raft.state.members
    missing = [n for n in names if n not in members]
    if missing:
        raise ApiError(
            409,
            f"{', '.join(missing)} has not announced itself yet; retry shortly",
            headers={"Retry-After": "1"},
        )
    plan = {
        "id": uuid.uuid4().hex,
        "targets": {n: members[n]["boot_id"] for n in names},
        "grace_period_secs": node.config.shutdown_grace_secs if grace is UNSET else grace,
        "drain_delay_secs": node.config.drain_delay_secs if drain_delay is UNSET else drain_delay,
        "scope": "cluster" if body.target == "cluster" else "nodes",
    }
    value = await node.commit("shutdown.plan", plan, principal)
    return json_response(
        {
            "status": "accepted",
            "plan_id": value["id"],  # a replay names the plan the first attempt committed
            "targets": names,
            "grace_period_secs": plan["grace_period_secs"],
            "drain_delay_secs": plan["drain_delay_secs"],
            "message": "each target reports not-ready now, drains, then exits 0",
        },
        status=202,
    )


async def drain(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    body = await read_body(request, Drain)
    names = _target_names(node, body.target)
    draining = body.draining
    for name in names:
        await node.commit("member.set_draining", {"name": name, "draining": draining}, principal)
    return json_response({"targets": names, "draining": draining})


PROBE_SECS = 2.0  # how long a new voter's Raft port has to accept a connection


async def add_member(request: web.Request, principal: Principal) -> web.Response:
    """Add a Raft voter by its raft address; the new node must already be running.

    Its Raft port is probed first: a voter that does not answer counts toward the
    quorum all the same, so adding one to a single node (or enough of them to a
    mesh) would stop every write, the removal included."""
    node = node_of(request)
    address = (await read_body(request, MemberAdd)).raft_address
    host, _, port = address.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ApiError(400, "raft_address must be HOST:PORT", param="raft_address")
    if node.raft.settings.self_address is None:
        raise ApiError(409, "this node is a read-only member; send membership changes to a voter")
    problem = await tcp_connects(host.strip("[]"), int(port), PROBE_SECS)
    if problem is not None:
        raise ApiError(
            409,
            f"nothing answers at {address} ({problem} within {PROBE_SECS:g} s); start the new "
            f"node first (--mesh-bind {address}, --mesh-peers the current voters, the mesh's "
            "--mesh-secret), then add it",
            code="MEMBER_NOT_ANSWERING",
            param="raft_address",
        )
    if address in {peer.address for peer in node.raft.status().peers}:
        # A retry of an add whose answer was lost: the first one took effect.
        return json_response({"status": "added", "raft_address": address, "already": True})
    try:
        await node.raft.add_voter(address)
    except CommitError as exc:
        raise _membership_failure(exc, f"adding {address}") from None
    return json_response({"status": "added", "raft_address": address})


def _membership_failure(exc: CommitError, what: str) -> ApiError:
    """A membership change that did not (knowingly) commit. Membership entries are
    pysyncobj's own (no request id, no expiry): an unknown one may still land, so the
    operator checks /ha/status rather than retrying blindly."""
    if exc.reason == "denied":
        return ApiError(
            409,
            f"{what} was refused: one membership change at a time, on a group with a leader",
            headers={"Retry-After": "1"},
            extra={"outcome": "not_committed", "request_id": None},
        )
    error = commit_failure(exc, what)
    if exc.outcome != "not_committed":
        error.message = (
            f"{what} may or may not have been committed ({exc.reason}); a membership change "
            "may still take effect later: check GET /ha/status before trying again"
        )
    return error


async def remove_member(request: web.Request, principal: Principal) -> web.Response:
    """Remove a member. It must be answering, unless `?force=true`: a member that will
    never come back (its machine is gone) is removed without it, from Raft if Raft
    still has it, and from the member list."""
    node = node_of(request)
    name = request.match_info["name"]
    force = query_flag(request, "force")
    member = node.raft.state.members.get(name)
    if member is None:
        raise ApiError(404, f"{name} is not a member", code="MEMBER_NOT_FOUND")
    if name == node.name:
        raise ApiError(409, "a node cannot remove itself; send this to another member")
    view = node.peers.views.get(name)
    if not force and view is not None and view.polled and not view.reachable:
        raise ApiError(
            409,
            f"{name} does not answer ({view.error}); if it will never come back, remove it "
            f"with DELETE /ha/members/{name}?force=true "
            f"(meshgate cluster remove-member {name} --force)",
            code="MEMBER_UNREACHABLE",
        )
    address = member.get("raft_address")
    in_raft = address in {peer.address for peer in node.raft.status().peers}
    if address and in_raft:
        try:
            await node.raft.remove_voter(address)
        except CommitError as exc:
            raise _membership_failure(exc, f"removing {name} from Raft") from None
    await node.commit("member.remove", {"name": name}, principal)
    return json_response(
        {"status": "removed", "name": name, "raft_address": address, "forced": force}
    )


# -- what became of a request ------------------------------------------------------------------

MAX_REQUEST_ID = 200


async def request_outcome(request: web.Request, _: Principal) -> web.Response:
    """Whether request id `request_id` was applied, and with what outcome, while remembered.

    `applied`: found, with its outcome. `not_applied`: not found, and it never will be:
    the caller gave the `expires_at` of each attempt (every "unknown" answer carries it),
    this node's log clock is past the latest, so no copy can be applied any more, and
    nothing applied since the earliest could have been made has been forgotten. Else
    `unknown`: not applied as of this node's applied index, and either it still may be
    (`can_still_apply`) or it may have been applied and forgotten (`remembered_since`)."""
    node = node_of(request)
    rid = request.match_info["request_id"]
    if len(rid) > MAX_REQUEST_ID:
        raise ApiError(400, f"a request id has at most {MAX_REQUEST_ID} characters")
    expiries = _expiries(request)
    state = node.raft.state
    log_time, forgotten = state.log_time, state.forgotten
    body: dict[str, Any] = {
        "request_id": rid,
        "applied_index": state.applied_index,
        "log_time": log_time or None,
        "remembered_since": forgotten,
    }
    record = state.request(rid)
    if record is not None:
        outcome = {k: v for k, v in record["outcome"].items() if k != "replayed"}
        body.update(
            status="applied",
            ok=bool(outcome.get("ok")),
            outcome=outcome,
            index=record["index"],
            message="applied at log index "
            + (str(record["index"]) if record["index"] else "(before this version)")
            + ("" if outcome.get("ok") else ", as a refusal: nothing changed"),
        )
        return json_response(body)
    can_still_apply = None if not expiries else not log_time > max(expiries)
    skew = node.raft.settings.clock_skew_allowance
    oldest_copy = min(expiries) - LONGEST_WAIT - skew if expiries else None
    covered = forgotten["index"] == 0 or (
        oldest_copy is not None
        and forgotten["log_time"] is not None
        and forgotten["log_time"] < oldest_copy
    )
    if can_still_apply is False and covered:
        status, message = (
            "not_applied",
            ("never applied, and never will be: the log's clock is past every expiry given"),
        )
    elif can_still_apply:
        status, message = (
            "unknown",
            (
                "not applied as of this node's applied index; it still may be, until the log's "
                "clock (log_time, which moves with every write) passes expires_at"
            ),
        )
    elif not covered:
        status, message = (
            "unknown",
            (
                "not remembered: it was not applied after remembered_since, and ids applied "
                "before then are forgotten"
                + ("" if expiries else "; give expires_at (from the unknown answer) to know more")
            ),
        )
    else:
        status, message = (
            "unknown",
            (
                "not applied as of this node's applied index; give expires_at (from the "
                "unknown answer) to learn whether it still may be"
            ),
        )
    body.update(status=status, can_still_apply=can_still_apply, message=message)
    return json_response(body)


def _expiries(request: web.Request) -> list[float]:
    expiries = []
    for raw in request.query.getall("expires_at", []):
        value = ascii_decimal(raw)
        if value is None or not math.isfinite(value):
            raise ApiError(
                400,
                "expires_at must be a time in seconds in ASCII digits (from an unknown answer)",
                param="expires_at",
            )
        expiries.append(value)
    return expiries


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/ha/local",
        local,
        Audience.MESH,
        "haLocal",
        "ha",
        "This node's own report (for peers and operators)",
        answers={200: "the report"},
    ),
    Route(
        "GET",
        "/ha/status",
        status,
        Audience.CONTROL_PLANE,
        "haStatus",
        "ha",
        "The mesh: nodes, roles, leader, quorum, stores",
        answers={200: "mesh status"},
    ),
    Route(
        "GET",
        "/ha/health",
        health,
        Audience.CONTROL_PLANE,
        "haHealth",
        "ha",
        "Is the mesh healthy from here?",
        answers={200: "healthy", 503: "unhealthy; reasons say why"},
    ),
    Route(
        "GET",
        "/ha/workers",
        list_workers,
        Audience.CONTROL_PLANE,
        "haListWorkers",
        "ha",
        "Replicated worker records with each node's view of their health",
        answers={200: "workers, pd_pairs (prefill/decode health per model)"},
    ),
    Route(
        "GET",
        "/ha/workers/{worker_id}",
        get_worker,
        Audience.CONTROL_PLANE,
        "haGetWorker",
        "ha",
        "One replicated worker record",
        answers={200: "the worker"},
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/ha/policies",
        policies.list_policies,
        Audience.CONTROL_PLANE,
        "haListPolicies",
        "ha",
        "Replicated policies",
        answers={200: "policies"},
    ),
    Route(
        "GET",
        "/ha/policies/{model_id}",
        policies.get_policy,
        Audience.CONTROL_PLANE,
        "haGetPolicy",
        "ha",
        "One replicated policy",
        answers={200: "the policy"},
        errors=(404,),
    ),
    Route(
        "GET",
        "/ha/config",
        list_config,
        Audience.CONTROL_PLANE,
        "haListConfig",
        "ha",
        "Replicated config keys",
        answers={200: "config keys"},
    ),
    Route(
        "GET",
        "/ha/config/{key:.+}",
        get_config,
        Audience.CONTROL_PLANE,
        "haGetConfig",
        "ha",
        "One config key",
        answers={200: "key, value, version"},
        errors=(404,),
    ),
    Route(
        "POST",
        "/ha/config",
        set_config,
        Audience.CONTROL_PLANE,
        "haSetConfig",
        "ha",
        "Write a config key (committed)",
        answers={200: "committed"},
        errors=(409, *COMMIT),
        body=ConfigSet,
    ),
    Route(
        "DELETE",
        "/ha/config/{key:.+}",
        delete_config,
        Audience.CONTROL_PLANE,
        "haDeleteConfig",
        "ha",
        "Delete a config key (committed)",
        answers={200: "deleted"},
        errors=(400, 404, 409, *COMMIT),
        query=(Query("expected_version", "the key's current version"),),
    ),
    Route(
        "GET",
        "/ha/rate-limit",
        get_rate_limits,
        Audience.CONTROL_PLANE,
        "haGetRateLimits",
        "ha",
        "Mesh-wide rate-limit rules",
        answers={200: "rules, backend, serving_nodes"},
    ),
    Route(
        "POST",
        "/ha/rate-limit",
        set_rate_limit,
        Audience.CONTROL_PLANE,
        "haSetRateLimit",
        "ha",
        "Set (or, with null, remove) a mesh-wide rate limit",
        answers={200: "the rule, or deleted"},
        errors=(404, 409, *COMMIT),
        body=RateLimitSet,
    ),
    Route(
        "GET",
        "/ha/rate-limit/stats",
        rate_limit_stats,
        Audience.CONTROL_PLANE,
        "haRateLimitStats",
        "ha",
        "Every node's rate-limit counters, added up per scope",
        answers={200: "scopes, nodes; missing_processes: a node's processes left out"},
        errors=(400,),
        query=(
            Query(
                "by",
                "process: each data-plane process's counts too, for a node of several",
                {"type": "string", "enum": [BY_PROCESS]},
            ),
        ),
    ),
    Route(
        "DELETE",
        "/ha/rate-limit/{scope}",
        delete_rate_limit,
        Audience.CONTROL_PLANE,
        "haDeleteRateLimit",
        "ha",
        "Remove a rate-limit rule",
        answers={200: "deleted"},
        errors=(404, *COMMIT),
    ),
    Route(
        "POST",
        "/ha/shutdown",
        shutdown,
        Audience.CONTROL_PLANE,
        "haShutdown",
        "ha",
        "Drain and stop this node, another member, or the whole mesh",
        answers={202: "accepted: each target drains, then exits"},
        errors=(404, 409, *COMMIT),
        body=Shutdown,
        body_required=False,
    ),
    Route(
        "POST",
        "/ha/drain",
        drain,
        Audience.CONTROL_PLANE,
        "haDrain",
        "ha",
        "Set or clear draining (not ready, finishes in-flight work) on members",
        answers={200: "targets, draining"},
        errors=(404, *COMMIT),
        body=Drain,
    ),
    Route(
        "POST",
        "/ha/members",
        add_member,
        Audience.CONTROL_PLANE,
        "haAddMember",
        "ha",
        "Add a Raft voter (the new node must be running: its Raft port is probed first)",
        answers={200: "added"},
        errors=(409, *COMMIT),
        body=MemberAdd,
    ),
    Route(
        "DELETE",
        "/ha/members/{name}",
        remove_member,
        Audience.CONTROL_PLANE,
        "haRemoveMember",
        "ha",
        "Remove another member from the mesh (one that does not answer needs force=true)",
        answers={200: "removed"},
        errors=(400, 404, 409, *COMMIT),
        query=(
            Query(
                "force",
                "true: remove a member that will never come back, although it does not answer",
                {"type": "string", "enum": ["true", "false"]},
            ),
        ),
    ),
    Route(
        "GET",
        "/ha/requests/{request_id}",
        request_outcome,
        Audience.CONTROL_PLANE,
        "haRequestOutcome",
        "ha",
        "Whether a write's request id was applied, and with what outcome",
        answers={
            200: (
                "status: applied (with ok and outcome), not_applied (never was, "
                "never will be) or unknown (not applied as of applied_index; "
                "can_still_apply and remembered_since say whether it still may be"
                " or may have been forgotten)"
            )
        },
        errors=(400,),
        query=(
            Query(
                "expires_at",
                "the expires_at of an attempt answered 'unknown' (repeat it for each attempt); "
                "with it the answer can be 'not_applied'",
                {"type": "number"},
            ),
        ),
        description=(
            "Request ids are remembered for the last 4096 commands and at least "
            "10 minutes of log time (at most 20000), and always while a copy of "
            "the command may still be applied."
        ),
    ),
)
