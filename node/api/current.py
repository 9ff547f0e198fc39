"""Handlers that decide from the replicated state see it current (Raft's ReadIndex).

A write of control state (a 404 "Model not found" is decided before the
command is sent) always runs on a current replica; a read of control state
does when asked with `?consistent=true`. The one place both happen is here,
around the handler, behind the route's guard: an unauthenticated caller
cannot make the node send anything to the leader.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.api.common import node_of, query_flag
from node.api.table import CONSISTENT, Handler, Route


def consistent_asked(request: web.Request) -> bool:
    """`?consistent=true|false`; a 400 saying what to send for anything else."""
    return query_flag(request, CONSISTENT.name)


def made_current(route: Route) -> Handler:
    """The route's handler, behind the ReadIndex its route asks for."""
    handler = route.handler
    if route.makes_current:

        async def always(request: web.Request, *args: Any) -> web.StreamResponse:
            await node_of(request).read_index.current()
            return await handler(request, *args)

        return always
    if route.takes_consistent:

        async def when_asked(request: web.Request, *args: Any) -> web.StreamResponse:
            if consistent_asked(request):
                await node_of(request).read_index.current()
            return await handler(request, *args)

        return when_asked
    return handler
