"""A data-plane process's routes: those it serves itself (node/plane/handover.py says
which; `/metrics` answers for every process of the node), then the control process's
routes, each handed to it. A path or method no route takes is answered here (404, 405),
before any body is read."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from node.api import live, openapi
from node.api.catalog import WITHOUT_FEED
from node.api.docs import DOCUMENT_BODY
from node.api.register import register
from node.api.table import INSTALLED, Handler
from node.plane.handover import Handover, served_here

METRICS_PATH = "/metrics"


def install(app: web.Application, handover: Handover, node_metrics: Handler) -> None:
    app[DOCUMENT_BODY] = openapi.body
    local = [route for route in WITHOUT_FEED if served_here(route)]
    register(
        app,
        [replace(r, handler=node_metrics) if r.path == METRICS_PATH else r for r in local],
    )
    live.install(app)  # GET /ws: this process's replica feeds it
    handed: list[web.AbstractRoute] = []
    for route in WITHOUT_FEED:  # the control process authenticates, answers and audits these
        if served_here(route):
            continue
        if route.method == "GET":  # with HEAD, as register() adds it
            handed.append(app.router.add_get(route.path, handover))
        else:
            handed.append(app.router.add_route(route.method, route.path, handover))
    app[INSTALLED] = replace(app[INSTALLED], elsewhere=frozenset(handed))
