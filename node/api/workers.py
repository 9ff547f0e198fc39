"""Worker management by UUID (seeds 000, 001, 003): `/workers` and `/workers/{worker_id}`.

`POST /workers` reserves the id atomically (the `worker.add` command commits
or conflicts on the URL) and answers 202 before discovery runs. One resolver
(`_resolve`) parses the id and produces the 400 and 404 for every id route.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from mesh.state import WORKER_TYPES
from node import idempotency
from node.api.common import json_object, json_response, node_of, reject_unknown
from node.api.table import COMMIT, Audience, Query, Route
from node.app import Node, connection_mode, normalise_url
from node.auth import Principal
from node.errors import ApiError
from node.workers.credentials import basic, bearer, safe_url, split_userinfo
from node.workers.worker import shown_record

CREATE_FIELDS = frozenset(
    {
        "url",
        "model_id",
        "worker_type",
        "runtime",
        "priority",
        "cost",
        "labels",
        "api_key",
        "connection_mode",
    }
)
UPDATE_FIELDS = frozenset(
    {
        "model_id",
        "worker_type",
        "runtime",
        "priority",
        "cost",
        "labels",
        "api_key",
        "url",
        "expected_version",
    }
)
SCHEMES = ("http", "https", "grpc", "grpcs")


# -- validation ------------------------------------------------------------------------


def _check_url(value: Any) -> tuple[str, tuple[str, str] | None]:
    """The worker URL without userinfo, and the user and password it held, if any.

    Messages never repeat the URL as given: it may hold a password."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "url is required: a string such as http://10.0.0.5:8000", param="url")
    try:
        url, userinfo = split_userinfo(normalise_url(value))
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ApiError(
            400,
            "url is not a valid URL with a valid port, such as http://10.0.0.5:8000",
            param="url",
        ) from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ApiError(  # without the URL: written without a scheme, it may hold a password
            400, "url must be http://, https:// or grpc:// with a host", param="url"
        )
    if parts.query or parts.fragment:
        raise ApiError(400, "url must not have a query or fragment", param="url")
    return url, userinfo


def _check_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate the mutable worker fields present in `data`; return them."""
    out: dict[str, Any] = {}
    for field in ("model_id", "runtime", "api_key"):
        if field in data:
            value = data[field]
            if value is not None and (not isinstance(value, str) or not value):
                raise ApiError(400, f"{field} must be a non-empty string or null", param=field)
            out[field] = value
    if "worker_type" in data:
        if data["worker_type"] not in WORKER_TYPES:
            raise ApiError(
                400, f"worker_type must be one of {', '.join(WORKER_TYPES)}", param="worker_type"
            )
        out["worker_type"] = data["worker_type"]
    if "priority" in data:
        value = data["priority"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1_000_000:
            raise ApiError(400, "priority must be an integer from 0 to 1000000", param="priority")
        out["priority"] = value
    if "cost" in data:
        value = data["cost"]
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ApiError(400, "cost must be a number >= 0", param="cost")
        out["cost"] = float(value)
    if "labels" in data:
        labels = data["labels"]
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ApiError(400, "labels must be an object of string values", param="labels")
        out["labels"] = labels
    return out


def _seal_api_key(node: Node, fields: dict[str, Any]) -> None:
    """Seal an `api_key` (sent as a bearer key) before it enters the log."""
    if fields.get("api_key"):
        fields["api_key"] = node.credentials.seal(bearer(fields["api_key"]))


def resolve_worker(node: Node, request: web.Request) -> dict[str, Any]:
    """The one resolver for every `/workers/{worker_id}` route."""
    raw = request.match_info["worker_id"]
    try:
        worker_id = str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(
            400, f"{raw!r} is not a worker id (a UUID)", code="BAD_REQUEST", param="worker_id"
        ) from None
    record = node.raft.state.workers.get(worker_id)
    if record is None:
        raise ApiError(404, f"worker {worker_id} not found", code="WORKER_NOT_FOUND")
    return record


def _view(node: Node, record: dict[str, Any]) -> dict[str, Any]:
    worker = node.pool.get(record["id"])
    view = worker.view() if worker else shown_record(record)
    progress = node.discovery.progress.get(record["id"])
    if progress and record["status"] == "pending":
        view["job_status"] = progress
    return view


# -- handlers ----------------------------------------------------------------------------


async def list_workers(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    model = request.query.get("model")
    records = sorted(node.raft.state.workers.values(), key=lambda r: r["created_at"])
    if model is not None:
        records = [r for r in records if r.get("model_id") == model]
    chosen = [w for r in records if (w := node.pool.get(r["id"])) is not None]
    return json_response(
        {
            "workers": [_view(node, r) for r in records],
            "total": len(records),
            "stats": node.pool.stats(chosen),
            "applied_index": node.raft.state.applied_index,
        }
    )


async def create_worker(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    data = await json_object(request)
    reject_unknown(data, CREATE_FIELDS)
    url, userinfo = _check_url(data.get("url"))
    mode = connection_mode(url)
    if "connection_mode" in data and str(data["connection_mode"]).lower() != mode:
        raise ApiError(
            400,
            f"connection_mode {data['connection_mode']!r} does not match the "
            f"url scheme (which means {mode})",
            param="connection_mode",
        )
    spec = {"id": str(uuid.uuid4()), "url": url, "connection_mode": mode, **_check_fields(data)}
    if userinfo is not None and spec.get("api_key"):
        raise ApiError(
            400,
            "give the worker's credential once: a user and password in the url "
            "(sent as HTTP Basic) or api_key (sent as a bearer key), not both",
            param="api_key",
        )
    existing = node.existing_worker(url)
    # With an Idempotency-Key the add itself decides (a duplicate URL is refused there too),
    # so that a retry of an add that took effect answers as the first time did.
    if existing is not None and idempotency.HEADER not in request.headers:
        raise ApiError(
            409,
            f"a worker with url {url} already exists",
            code="CONFLICT",
            extra={"worker_id": existing},
        )
    _seal_api_key(node, spec)
    if userinfo is not None:  # sent as HTTP Basic, as the URL asked
        spec["api_key"] = node.credentials.seal(basic(*userinfo))
    value = await node.commit("worker.add", {"worker": spec}, principal)
    worker_id = value["worker_id"]  # a replay names the worker the first attempt added
    node.discovery.start(worker_id)
    location = f"/workers/{worker_id}"
    return json_response(
        {
            "status": "accepted",
            "worker_id": worker_id,
            "url": url,
            "location": location,
            "message": "worker registered; discovery is running in the background "
            f"(GET {location} shows its status)",
        },
        status=202,
        headers={"Location": location},
    )


async def get_worker(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    return json_response(_view(node, resolve_worker(node, request)))


async def update_worker(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    record = resolve_worker(node, request)
    data = await json_object(request)
    reject_unknown(data, UPDATE_FIELDS)
    if "url" in data and _check_url(data["url"])[0] != safe_url(record["url"]):
        raise ApiError(
            400, "url cannot change; delete this worker and add the new url", param="url"
        )
    changes = _check_fields(data)
    if not changes:
        raise ApiError(
            400,
            "nothing to change; send one or more of: "
            + ", ".join(sorted(UPDATE_FIELDS - {"url", "expected_version"})),
        )
    _seal_api_key(node, changes)
    args: dict[str, Any] = {"id": record["id"], "changes": changes}
    if "expected_version" in data:
        args["expected_version"] = data["expected_version"]
    await node.commit("worker.update", args, principal)
    return json_response(_view(node, node.raft.state.workers[record["id"]]))


async def delete_worker(request: web.Request, principal: Principal) -> web.Response:
    """Stop routing to the worker everywhere, let this node's in-flight requests finish, remove."""
    node = node_of(request)
    record = resolve_worker(node, request)
    if record["status"] != "draining":
        await node.commit(
            "worker.set_status",
            {
                "id": record["id"],
                "status": "draining",
                "job_status": {"state": "draining", "message": "removal requested"},
            },
            principal,
        )
    worker = node.pool.get(record["id"])
    deadline = time.monotonic() + node.config.worker_drain_timeout_secs
    while worker is not None and worker.load > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    remaining = worker.load if worker is not None else 0
    await node.commit("worker.remove", {"id": record["id"]}, principal)
    return json_response(
        {
            "status": "deleted",
            "worker_id": record["id"],
            "url": safe_url(record["url"]),
            "drained": remaining == 0,
            "in_flight_at_removal": remaining,
            "message": "worker removed"
            if remaining == 0
            else f"drain timeout passed with {remaining} request(s) in flight; "
            "they continue to completion",
        }
    )


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/workers",
        list_workers,
        Audience.CONTROL_PLANE,
        "listWorkers",
        "workers",
        "Every registered worker, with live status and stats",
        answers={200: "workers, total, stats, applied_index"},
        query=(Query("model", "only workers of this model id"),),
    ),
    Route(
        "POST",
        "/workers",
        create_worker,
        Audience.CONTROL_PLANE,
        "createWorker",
        "workers",
        "Register a worker; discovery runs in the background",
        answers={202: "accepted; Location names the worker"},
        errors=(409, *COMMIT),
        body="WorkerCreate",
    ),
    Route(
        "GET",
        "/workers/{worker_id}",
        get_worker,
        Audience.CONTROL_PLANE,
        "getWorker",
        "workers",
        "One worker",
        answers={200: "the worker"},
        errors=(400, 404),
    ),
    *(  # PUT and PATCH both change only the fields sent
        Route(
            method,
            "/workers/{worker_id}",
            update_worker,
            Audience.CONTROL_PLANE,
            f"{method.lower()}Worker",
            "workers",
            "Change a worker's mutable fields",
            answers={200: "the updated worker"},
            errors=(404, 409, *COMMIT),
            body="WorkerUpdate",
        )
        for method in ("PUT", "PATCH")
    ),
    Route(
        "DELETE",
        "/workers/{worker_id}",
        delete_worker,
        Audience.CONTROL_PLANE,
        "deleteWorker",
        "workers",
        "Drain a worker everywhere, then remove it",
        answers={200: "deleted, with drain outcome"},
        errors=(400, 404, 409, *COMMIT),
    ),
)
