"""Install routes from their table records: each handler behind its audience's guard."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from aiohttp import web

from node.api.current import made_current
from node.api.guards import GUARDS
from node.api.table import INSTALLED, Audience, Installed, Route
from node.idempotency import committing

# The only audiences whose handlers may authenticate the caller themselves (inference
# answers in each API's own error shape; a published path and /ws check their own keys).
CHECK_THEIR_OWN: Final = frozenset({Audience.PROTECTED, Audience.PUBLISHED, Audience.WEBSOCKET})


def register(app: web.Application, routes: Iterable[Route]) -> None:
    """Add the routes to the app's router, and to the table the middlewares read."""
    added = []
    for route in routes:
        if route.checks_credentials and route.audience not in CHECK_THEIR_OWN:
            raise ValueError(
                f"{route.method} {route.path}: a {route.audience} route cannot skip its guard"
            )
        inner = made_current(route)
        handler = inner if route.checks_credentials else GUARDS[route.audience](inner)
        if route.may_commit:  # a write's commands get its context (node/idempotency.py)
            handler = committing(handler)
        if route.method == "GET":  # with HEAD, which load balancers probe with
            added.append((app.router.add_get(route.path, handler), route))
        else:
            added.append((app.router.add_route(route.method, route.path, handler), route))
    before = app[INSTALLED].by_route.items() if INSTALLED in app else ()
    app[INSTALLED] = Installed.of([*before, *added])
