"""Every HTTP route of a node, installed in one place from the route table."""

from __future__ import annotations

from aiohttp import web

from node.api import live, openapi
from node.api.catalog import WITHOUT_FEED
from node.api.docs import DOCUMENT_BODY
from node.api.register import register
from node.app import Node


def install(app: web.Application, node: Node) -> None:
    app[DOCUMENT_BODY] = openapi.body  # built at the first GET /openapi.json
    register(app, WITHOUT_FEED)
    live.install(app)  # GET /ws, with the feed behind it
