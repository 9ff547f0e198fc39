"""Every HTTP route of a node, installed in one place, by audience."""

from __future__ import annotations

from aiohttp import web

import node.api.openapi as openapi
from node.api import admin, ha, health, live, manage, models, openai, ops, policies, workers
from node.app import Node


def install(app: web.Application, node: Node) -> None:
    health.install(app)
    openai.install(app)
    workers.install(app)
    policies.install(app)
    ops.install(app)
    ha.install(app)
    admin.install(app)
    manage.install(app)
    models.install(app)
    live.install(app)
    openapi.install(app)
