"""`GET /openapi.json` (public): the node's OpenAPI document, generated from the route table.

The document is built once, at the first request (`node.api.openapi.body`, handed
to the app at install, so this route can be in the table the document is built
from); later requests do no work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web

from node.api.table import Audience, Route

PATH: Final = "/openapi.json"
DOCUMENT_BODY: Final = web.AppKey("openapi_body", Callable[[], bytes])


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT_BODY](), content_type="application/json")


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
