"""The tokenizer registry (seeds 000, 001): `/v1/tokenizers` and `/v1/tokenizers/{id}`.

`POST` reads the source on this node into its blob store (node/tokenizers/sources.py),
commits a record that names the files by digest, and answers 202: every node then
fetches the files from a peer and loads the tokenizer in the background
(node/tokenizers/registry.py). `GET .../status` shows every node's view of it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from aiohttp import web
from msgspec import Meta

from mesh.commands import TOKENIZER_NAME_LIMIT, TOKENIZER_SOURCE_LIMIT
from node.api.bodies import Body, read_body, whole
from node.api.common import json_response, node_of
from node.api.node_views import node_views, summary
from node.api.table import COMMIT, Audience, Route
from node.app import Node
from node.auth import Principal
from node.errors import ApiError
from node.tokenizers.sources import FORMS, SourceError, read_source

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*"

# The whole record must fit MAX_RECORD_BYTES (64 KiB) with a source and a failure of
# up to 4096 characters each, so the template gets less than the record's size.
TEMPLATE_LIMIT: Final = 48 * 1024


class TokenizerCreate(Body):
    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=TOKENIZER_NAME_LIMIT,
            pattern=whole(NAME_PATTERN),
            description=f"1-{TOKENIZER_NAME_LIMIT} letters, digits and . _ : / @ + - "
            "(starting with a letter or digit); unique",
        ),
    ]
    source: Annotated[str, Meta(min_length=1, max_length=TOKENIZER_SOURCE_LIMIT, description=FORMS)]
    chat_template: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=TEMPLATE_LIMIT,
                description="a Jinja chat template used instead of the tokenizer's",
            ),
        ]
        | None
    ) = None


def resolve_tokenizer(node: Node, request: web.Request) -> dict[str, Any]:
    """The one resolver for every `/v1/tokenizers/{tokenizer_id}` route."""
    raw = request.match_info["tokenizer_id"]
    try:
        tokenizer_id = str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(
            400, f"{raw[:80]!r} is not a tokenizer id (a UUID)", param="tokenizer_id"
        ) from None
    record = node.raft.state.tokenizers.get(tokenizer_id)
    if record is None:
        raise ApiError(404, f"tokenizer {tokenizer_id} not found", code="TOKENIZER_NOT_FOUND")
    return record


def _view(node: Node, record: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in record.items() if k != "failure"}
    return {**shown, "status": node.tokenizer_registry.status(record["id"])}


def _drop_unused(node: Node, files: dict[str, dict[str, Any]]) -> None:
    """Remove files read for a registration that was refused, unless a record uses them.
    (Not after an unknown outcome: the record may be applied, and this node's copy is
    then the only one.)"""
    digests = [entry["sha256"] for entry in files.values()]
    node.blobs.remove_unused(digests, node.raft.state.digests_in_use())


# -- handlers ----------------------------------------------------------------------------


async def list_tokenizers(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    records = sorted(node.raft.state.tokenizers.values(), key=lambda r: r["created_at"])
    return json_response(
        {
            "tokenizers": [_view(node, r) for r in records],
            "total": len(records),
            "applied_index": node.raft.state.applied_index,
        }
    )


async def create_tokenizer(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    body = await read_body(request, TokenizerCreate)
    taken = node.raft.state.tokenizer_named(body.name)
    if taken is not None:  # before reading the source; the commit decides a race
        raise ApiError(
            409,
            f"a tokenizer named {body.name!r} already exists",
            code="CONFLICT",
            extra={"tokenizer_id": taken["id"]},
        )
    try:
        read = await read_source(
            body.source, node.blobs, node.session, node.config.blob_fetch_timeout_secs
        )
    except SourceError as exc:
        raise ApiError(400, str(exc), param="source") from None
    spec: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": body.name,
        "source": read.source,
        "files": read.files,
        "chat_template": body.chat_template,
    }
    if read.failure:
        spec["failure"] = read.failure
    _drop_unused(node, read.unused)  # downloaded, then refused: no record will name them
    try:
        value = await node.commit("tokenizer.add", {"tokenizer": spec}, principal)
    except ApiError as exc:
        if exc.extra.get("outcome") == "rejected":  # never applied: its files are no one's
            _drop_unused(node, read.files)
        raise
    tokenizer_id = value["tokenizer_id"]  # a replay names the tokenizer the first one added
    location = f"/v1/tokenizers/{tokenizer_id}"
    answer = {
        "id": tokenizer_id,
        "name": body.name,
        "status": "failed" if read.failure else "pending",
        "location": location,
        "message": read.failure
        or f"registered; every node fetches and loads it (GET {location}/status)",
    }
    return json_response(answer, status=202, headers={"Location": location})


async def get_tokenizer(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    return json_response(_view(node, resolve_tokenizer(node, request)))


async def tokenizer_status(request: web.Request, _: Principal) -> web.Response:
    node = node_of(request)
    record = resolve_tokenizer(node, request)
    own = node.tokenizer_registry.status(record["id"])
    views = node_views(node, "tokenizers", record["id"], own)
    return json_response(
        {"id": record["id"], "name": record["name"], "status": summary(views), "nodes": views}
    )


async def delete_tokenizer(request: web.Request, principal: Principal) -> web.Response:
    node = node_of(request)
    record = resolve_tokenizer(node, request)
    await node.commit("tokenizer.remove", {"id": record["id"]}, principal)
    return json_response({"status": "deleted", "id": record["id"], "name": record["name"]})


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/v1/tokenizers",
        list_tokenizers,
        Audience.CONTROL_PLANE,
        "listTokenizers",
        "tokenizers",
        "Every registered tokenizer, with its status on this node",
        answers={200: "tokenizers, total, applied_index"},
    ),
    Route(
        "POST",
        "/v1/tokenizers",
        create_tokenizer,
        Audience.CONTROL_PLANE,
        "createTokenizer",
        "tokenizers",
        "Register a tokenizer from a path, URL or Hugging Face id; every node loads it",
        answers={202: "accepted; Location names the tokenizer"},
        errors=(409, *COMMIT),
        body=TokenizerCreate,
    ),
    Route(
        "GET",
        "/v1/tokenizers/{tokenizer_id}",
        get_tokenizer,
        Audience.CONTROL_PLANE,
        "getTokenizer",
        "tokenizers",
        "One tokenizer, with its status on this node",
        answers={200: "the tokenizer"},
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/v1/tokenizers/{tokenizer_id}/status",
        tokenizer_status,
        Audience.CONTROL_PLANE,
        "getTokenizerStatus",
        "tokenizers",
        "Every node's view of one tokenizer: pending, ready or failed, and why",
        answers={200: "id, name, status, nodes"},
        errors=(400, 404),
    ),
    Route(
        "DELETE",
        "/v1/tokenizers/{tokenizer_id}",
        delete_tokenizer,
        Audience.CONTROL_PLANE,
        "deleteTokenizer",
        "tokenizers",
        "Remove a tokenizer everywhere; files no longer used are deleted",
        answers={200: "deleted"},
        errors=(400, 404, *COMMIT),
    ),
)
