"""Worker management by UUID (seeds 000, 001, 003): `/workers` and `/workers/{worker_id}`.

`POST /workers` reserves the id atomically (the `worker.add` command commits
or conflicts on the URL) and answers 202 before discovery runs. One resolver
(`_resolve`) parses the id and produces the 400 and 404 for every id route.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from mesh.commands import WORKER_TEXT_LIMITS, WORKER_TYPES
from node import idempotency
from node.api.bodies import Body, read_body, whole
from node.api.common import json_response, node_of
from node.api.table import COMMIT, Audience, Query, Route
from node.app import Node, connection_mode, normalise_url
from node.auth import Principal
from node.errors import ApiError
from node.parsers.registry import REASONING_PARSERS, TOOL_PARSERS
from node.workers.credentials import basic, bearer, safe_url, split_userinfo
from node.workers.pairs import pair_health
from node.workers.worker import shown_record

NonEmpty = Annotated[str, Meta(min_length=1, description="a non-empty string, or null")]
Version = Annotated[
    Annotated[int, Meta(ge=0)] | None,
    Meta(description="optimistic concurrency: the record's current version (0: must not exist)"),
]
WorkerType = Annotated[
    Literal[WORKER_TYPES],  # type: ignore[valid-type]
    Meta(description=f"one of {', '.join(WORKER_TYPES)}"),
]
# A secret goes to the worker in a header: a control character would split or end it.
Secret = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=4096,
        pattern=whole("[^\\x00-\\x1f\\x7f]*"),
        description="sent to the worker in a header (no control characters); never shown again",
    ),
]


def _text_meta(field: str, what: str) -> Meta:
    return Meta(min_length=1, max_length=WORKER_TEXT_LIMITS[field], description=what)


TokenizerPath = Annotated[
    str, _text_meta("tokenizer_path", "a tokenizer file, directory or registered tokenizer name")
]
ChatTemplate = Annotated[
    str, _text_meta("chat_template", "a Jinja chat template used instead of the tokenizer's")
]
ReasoningParser = Annotated[
    Literal[tuple(sorted(REASONING_PARSERS))],  # type: ignore[valid-type]
    Meta(
        description="turns think blocks into reasoning_content; one of "
        + ", ".join(sorted(REASONING_PARSERS))
    ),
]
ToolParser = Annotated[
    Literal[tuple(sorted(TOOL_PARSERS))],  # type: ignore[valid-type]
    Meta(
        description="turns raw tool-call text into tool_calls; one of "
        + ", ".join(sorted(TOOL_PARSERS))
    ),
]
BootstrapPort = Annotated[
    int,
    Meta(
        ge=1,
        le=65535,
        description="a prefill worker's KV bootstrap port (SGLang's disaggregation-bootstrap-port)",
    ),
]
URL_TEXT = "the worker's base URL: http(s):// or grpc(s):// with a host, no query or fragment"


class WorkerFields(Body):
    """The fields of a worker that a write may set (absent: unchanged)."""

    model_id: NonEmpty | UnsetType | None = UNSET
    worker_type: WorkerType | UnsetType = UNSET
    runtime: NonEmpty | UnsetType | None = UNSET
    priority: Annotated[int, Meta(ge=0, le=1_000_000, description="0 to 1000000")] | UnsetType = (
        UNSET
    )
    cost: Annotated[float, Meta(ge=0, description="a number >= 0")] | UnsetType = UNSET
    labels: Annotated[dict[str, str], Meta(description="string values")] | UnsetType = UNSET
    api_key: Secret | UnsetType | None = UNSET
    tokenizer_path: TokenizerPath | UnsetType | None = UNSET
    chat_template: ChatTemplate | UnsetType | None = UNSET
    reasoning_parser: ReasoningParser | UnsetType | None = UNSET
    tool_parser: ToolParser | UnsetType | None = UNSET
    bootstrap_port: BootstrapPort | UnsetType | None = UNSET


class WorkerCreate(WorkerFields, kw_only=True):
    url: Annotated[
        str,
        Meta(
            description=URL_TEXT,
            extra_json_schema={"format": "uri", "pattern": "^\\s*(https?|grpcs?)://[^\\s/?#]+"},
        ),
    ]
    connection_mode: (
        Annotated[
            str,
            Meta(description="http or grpc: must match the url scheme (which decides it anyway)"),
        ]
        | UnsetType
    ) = UNSET


class WorkerUpdate(WorkerFields):
    url: Annotated[
        Any, Meta(description="may be sent, but must equal the worker's current url")
    ] = UNSET
    expected_version: Version | UnsetType = UNSET
    # One or more mutable fields (PUT and PATCH both change only what is sent).
    schema_extra: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": [name]} for name in sorted(WorkerFields.__struct_fields__)]
    }


MUTABLE_FIELDS = frozenset(WorkerFields.__struct_fields__)
CREATE_FIELDS = frozenset(WorkerCreate.__struct_fields__)
UPDATE_FIELDS = frozenset(WorkerUpdate.__struct_fields__)
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


def _changes(body: WorkerFields) -> dict[str, Any]:
    """The mutable fields the body sets (`node.commit` asks the command's rule of them)."""
    values = {name: getattr(body, name) for name in sorted(MUTABLE_FIELDS)}
    return {name: value for name, value in values.items() if value is not UNSET}


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
    if record.get("connection_mode") == "grpc":
        view["tokenizer_loaded"] = node.grpc_workers.tokenizer_loaded(record["id"])
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
            "pd_pairs": pair_health(chosen),
            "applied_index": node.raft.state.applied_index,
        }
    )


async def create_worker(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    body = await read_body(request, WorkerCreate)
    url, userinfo = _check_url(body.url)
    mode = connection_mode(url)
    if body.connection_mode is not UNSET and body.connection_mode.lower() != mode:
        raise ApiError(
            400,
            f"connection_mode {body.connection_mode!r} does not match the "
            f"url scheme (which means {mode})",
            param="connection_mode",
        )
    spec = {"id": str(uuid.uuid4()), "url": url, "connection_mode": mode, **_changes(body)}
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
    body = await read_body(request, WorkerUpdate)
    if body.url is not UNSET and _check_url(body.url)[0] != safe_url(record["url"]):
        raise ApiError(
            400, "url cannot change; delete this worker and add the new url", param="url"
        )
    changes = _changes(body)
    if not changes:
        raise ApiError(
            400, "nothing to change; send one or more of: " + ", ".join(sorted(MUTABLE_FIELDS))
        )
    _seal_api_key(node, changes)
    args: dict[str, Any] = {"id": record["id"], "changes": changes}
    if body.expected_version is not UNSET:
        args["expected_version"] = body.expected_version
    await node.commit("worker.update", args, principal)
    return json_response(_view(node, node.raft.state.workers[record["id"]]))


async def _drain(node: Node, record: dict[str, Any], principal: Principal, why: str) -> None:
    """Stop routing to the worker on every node (one way: a draining worker is only removed)."""
    if record["status"] != "draining":
        await node.commit(
            "worker.set_status",
            {
                "id": record["id"],
                "status": "draining",
                "job_status": {"state": "draining", "message": why},
            },
            principal,
        )


async def drain_worker(request: web.Request, principal: Principal) -> web.Response:
    """Stop routing new requests to the worker everywhere; it stays listed until removed."""
    node = node_of(request)
    record = resolve_worker(node, request)
    await _drain(node, record, principal, "drain requested")
    return json_response(_view(node, node.raft.state.workers[record["id"]]))


async def delete_worker(request: web.Request, principal: Principal) -> web.Response:
    """Stop routing to the worker everywhere, let this node's in-flight requests finish, remove."""
    node = node_of(request)
    record = resolve_worker(node, request)
    await _drain(node, record, principal, "removal requested")
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
        answers={200: "workers, total, stats, pd_pairs (prefill/decode health), applied_index"},
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
        body=WorkerCreate,
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
            body=WorkerUpdate,
        )
        for method in ("PUT", "PATCH")
    ),
    Route(
        "POST",
        "/workers/{worker_id}/drain",
        drain_worker,
        Audience.CONTROL_PLANE,
        "drainWorker",
        "workers",
        "Stop routing new requests to a worker on every node (until it is removed)",
        answers={200: "the draining worker"},
        errors=(400, 404, *COMMIT),
        description="One way: a draining worker is never routed to again; DELETE removes it.",
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
