"""A data-plane process's routes: those it serves itself (node/plane/handover.py says
which), then one catch-all that hands every other request to the control process."""

from __future__ import annotations

from aiohttp import web

from node.api import live, openapi
from node.api.catalog import WITHOUT_FEED
from node.api.docs import DOCUMENT_BODY
from node.api.register import register
from node.plane.handover import Handover, served_here


def install(app: web.Application, handover: Handover) -> None:
    app[DOCUMENT_BODY] = openapi.body
    register(app, [route for route in WITHOUT_FEED if served_here(route)])
    live.install(app)  # GET /ws: this process's replica feeds it
    # Last: a path or method no route above takes (a 404 or 405 too) is the control's to answer.
    app.router.add_route("*", "/{tail:.*}", handover)
