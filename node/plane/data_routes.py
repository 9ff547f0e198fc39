"""A data-plane process's routes: those it serves itself (node/plane/handover.py says
which; `/metrics` answers for every process of the node), then one catch-all that
hands every other request to the control process."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from node.api import live, openapi
from node.api.catalog import WITHOUT_FEED
from node.api.docs import DOCUMENT_BODY
from node.api.register import register
from node.api.table import Handler
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
    # Last: a path or method no route above takes (a 404 or 405 too) is the control's to answer.
    app.router.add_route("*", "/{tail:.*}", handover)
