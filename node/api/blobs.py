"""`GET /ha/blobs/{sha256}`: a blob this node has, for a peer that lacks it (mesh token).

The file is hashed again before it is sent (a changed file is deleted and fetched
again, node/blobs/store.py), then streamed from disk.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from node.api.common import node_of
from node.api.table import Audience, Route
from node.auth import Principal
from node.blobs.store import BlobError, check_digest
from node.errors import ApiError


async def get_blob(request: web.Request, _: Principal | None) -> web.StreamResponse:
    store = node_of(request).blobs
    try:
        digest = check_digest(request.match_info["sha256"])
    except BlobError as exc:
        raise ApiError(400, str(exc), param="sha256") from None
    path = await asyncio.to_thread(store.verified, digest)
    if path is None:
        raise ApiError(404, f"this node has no blob {digest}", code="BLOB_NOT_FOUND")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


ROUTES = (
    Route(
        "GET",
        "/ha/blobs/{sha256}",
        get_blob,
        Audience.MESH,
        "haBlob",
        "ha",
        "A blob this node has, by its sha256 (peers fetch tokenizer files here)",
        answers={
            200: {
                "description": "the blob's bytes",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        },
        errors=(400, 404),
    ),
)
