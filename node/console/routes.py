"""`GET /ui`, `/ui/` and `/ui/{path}`: the console's page and assets (public: they carry
no data; every piece of data comes from the API with the session's token).

Every answer of these handlers, a 404 included, carries the same headers: a
Content-Security-Policy that allows only this origin's scripts and styles (the page has
nothing inline), nosniff, no referrer, `Cache-Control: no-cache` with an ETag (an
upgraded node serves its new page at once; an unchanged file costs a 304).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.api.table import Audience, Route
from node.console.assets import lookup, shipped
from node.errors import error_response

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def redirect(_: web.Request) -> web.Response:
    return web.Response(status=308, headers={**HEADERS, "Location": "/ui/"})


async def asset(request: web.Request) -> web.Response:
    found = lookup(shipped(), request.match_info.get("path", ""))
    if found is None:
        return error_response(404, "no such console file", headers=dict(HEADERS))
    headers = {**HEADERS, "ETag": found.etag}
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, headers={**headers, "Content-Type": found.content_type})


ROUTES = (
    Route(
        "GET",
        "/ui",
        redirect,
        Audience.PUBLIC,
        "consoleRedirect",
        "console",
        "The console: redirects to /ui/",
        answers={308: "to /ui/"},
    ),
    Route(
        "GET",
        "/ui/{path:.*}",
        asset,
        Audience.PUBLIC,
        "consoleFile",
        "console",
        "The console's page (/ui/) and its files (scripts, styles, vendored libraries)",
        answers={
            200: {"description": "the file", "content": {"text/html": {}, "text/javascript": {}}},
            304: "unchanged (If-None-Match)",
        },
        errors=(404,),
        documented_as="/ui/{path}",
    ),
)
