"""The routes the front serves itself: each fast path's route, resolved once.

aiohttp resolves every request's route, and wraps its handler in the app's middlewares,
per request. For the inference paths the answer never changes, so it is made once here,
from the app as it was frozen: the same route (so `request.match_info.route` finds the
route table's record), the same `on_response_prepare` hooks, the same middlewares in the
same order around the same handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial

from aiohttp import web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from yarl import URL

from node.api.table import INSTALLED

Handle = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    url: URL
    app: web.Application  # its on_response_prepare hooks
    match_info: UrlMappingMatchInfo  # frozen: shared by the route's requests, as aiohttp's are
    handle: Handle  # the handler inside the app's middlewares


def fast_routes(app: web.Application, paths: Collection[str]) -> Mapping[bytes, FastRoute]:
    """The POST route of each of `paths` that this app answers itself (a data-plane
    process hands some routes over; those stay aiohttp's), by the path's bytes."""
    installed = app.get(INSTALLED)
    elsewhere = installed.elsewhere if installed is not None else frozenset()
    found: dict[bytes, FastRoute] = {}
    for resource in app.router.resources():
        if resource.canonical not in paths:
            continue
        for route in resource:
            if route.method != "POST" or route in elsewhere:
                continue
            match_info = UrlMappingMatchInfo({}, route)
            match_info.add_app(app)
            match_info.freeze()
            handle: Handle = route.handler
            for middleware in reversed(app.middlewares):
                handle = partial(middleware, handler=handle)
            path = resource.canonical
            found[path.encode("ascii")] = FastRoute(URL.build(path=path), app, match_info, handle)
    return found
