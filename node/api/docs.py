"""`GET /openapi.json` (public): the node's OpenAPI document, generated from the route table.

The document is built once (`node.api.openapi`) and its bytes are handed to the
app at install, so a request does no work, and this route can be in the table
the document is built from.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.api.table import Audience, Route

PATH: Final = "/openapi.json"
DOCUMENT_BODY: Final = web.AppKey("openapi_body", bytes)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT_BODY], content_type="application/json")


ROUTES = (
    Route(
        "GET",
        PATH,
        openapi_json,
        Audience.PUBLIC,
        "openapi",
        "probes",
        "This node's OpenAPI 3.1 document",
        answers={200: "the document"},
    ),
)
