"""Install routes from their table records: each handler behind its audience's guard."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from node.api.guards import GUARDS
from node.api.table import INSTALLED, Installed, Route


def register(app: web.Application, routes: Iterable[Route]) -> None:
    """Add the routes to the app's router, and to the table the middlewares read."""
    added = []
    for route in routes:
        handler = (
            route.handler if route.checks_credentials else GUARDS[route.audience](route.handler)
        )
        if route.method == "GET":  # with HEAD, which load balancers probe with
            added.append((app.router.add_get(route.path, handler), route))
        else:
            added.append((app.router.add_route(route.method, route.path, handler), route))
    before = app[INSTALLED].by_route.items() if INSTALLED in app else ()
    app[INSTALLED] = Installed.of([*before, *added])
